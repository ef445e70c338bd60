//! Property tests over what hostile clients control: the key parser, the
//! `/mcp` body decoder, and the whole router fed arbitrary key headers and
//! bodies. Never a panic; always a documented answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use chrono::Utc;
use plexmcp::admin::{self, KeyRequest};
use plexmcp::domain::{Actor, McpAccess};
use plexmcp::keys::{self, ApiKey, KEY_LEN, KEY_PREFIX, KeyError, ServerSecret};
use plexmcp::server::{ApiError, Gateway, MAX_BODY_BYTES, decode_call};
use plexmcp::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

// ---------------------------------------------------------------------------
// Key parser
// ---------------------------------------------------------------------------

/// Everything `parse` and `parse_and_check` say about `text` must agree
/// with the documented format; returns the parse result for more checks.
fn check_key_text(text: &str, secret: &ServerSecret) -> Result<(), TestCaseError> {
    match keys::parse(text) {
        Ok(parsed) => {
            prop_assert_eq!(text.len(), KEY_LEN);
            prop_assert!(text.starts_with(KEY_PREFIX));
            prop_assert!(
                text[KEY_PREFIX.len()..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric())
            );
            prop_assert_eq!(parsed.text(), text);
            prop_assert!(keys::is_valid_id(parsed.id()));
            match keys::parse_and_check(text, secret) {
                Ok(checked) => prop_assert_eq!(checked.text(), text),
                Err(e) => prop_assert_eq!(e, KeyError::BadTag),
            }
        }
        Err(KeyError::Empty) => prop_assert!(text.is_empty()),
        Err(KeyError::WrongPrefix) => prop_assert!(!text.starts_with(KEY_PREFIX)),
        Err(KeyError::WrongLength { found }) => {
            prop_assert_eq!(found, text.chars().count());
            prop_assert_ne!(found, KEY_LEN);
        }
        Err(KeyError::InvalidCharacter) => {
            prop_assert_eq!(text.chars().count(), KEY_LEN);
            prop_assert!(
                !text[KEY_PREFIX.len()..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric())
            );
        }
        Err(KeyError::BadTag) => prop_assert!(false, "parse alone never checks the tag"),
    }
    // `parse_and_check` fails exactly where `parse` does, or on the tag.
    if let Err(e) = keys::parse(text) {
        prop_assert_eq!(keys::parse_and_check(text, secret).unwrap_err(), e);
    }
    Ok(())
}

fn secret() -> impl Strategy<Value = ServerSecret> {
    any::<[u8; 32]>().prop_map(ServerSecret::from_bytes)
}

/// A real key from `secret`, drawn from arbitrary generator bytes.
fn real_key(secret: &ServerSecret, seed: Vec<u8>) -> ApiKey {
    let mut at = 0usize;
    keys::generate_with(secret, move |buf| {
        for b in buf.iter_mut() {
            // Cycle the seed, perturbed so an all-rejected seed still ends.
            *b = seed.get(at % seed.len().max(1)).copied().unwrap_or(0) ^ (at as u8);
            at += 1;
        }
    })
}

proptest! {
    #![proptest_config(Config::with_cases(2048))]

    #[test]
    fn key_parser_takes_any_string(text in any::<String>(), secret in secret()) {
        check_key_text(&text, &secret)?;
        check_key_text(&format!("{KEY_PREFIX}{text}"), &secret)?;
    }

    #[test]
    fn key_parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let secret = ServerSecret::from_bytes([3; 32]);
        check_key_text(&String::from_utf8_lossy(&bytes), &secret)?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            check_key_text(text, &secret)?;
        }
    }

    #[test]
    fn key_parser_takes_near_keys(
        body in "[0-9A-Za-z]{40,52}",
        noise in any::<String>(),
        at in 0usize..60,
    ) {
        let secret = ServerSecret::from_bytes([5; 32]);
        let text = format!("{KEY_PREFIX}{body}");
        check_key_text(&text, &secret)?;
        // The same with arbitrary text spliced in at a char boundary.
        let mut spliced = text.clone();
        let at = at.min(spliced.len());
        spliced.insert_str(at, &noise);
        check_key_text(&spliced, &secret)?;
    }

    #[test]
    fn real_keys_pass_and_any_change_fails(
        secret in secret(),
        seed in proptest::collection::vec(any::<u8>(), 1..64),
        at in 0usize..KEY_LEN,
        replacement in any::<char>(),
    ) {
        let key = real_key(&secret, seed);
        let text = key.expose();
        check_key_text(text, &secret)?;
        prop_assert!(keys::parse_and_check(text, &secret).is_ok());

        let mut chars: Vec<char> = text.chars().collect();
        prop_assume!(chars[at] != replacement);
        chars[at] = replacement;
        let changed: String = chars.into_iter().collect();
        check_key_text(&changed, &secret)?;
        // One character differs: never accepted (the tag would have to
        // collide, one chance in 62^6, which proptest will not find).
        prop_assert!(keys::parse_and_check(&changed, &secret).is_err());
    }
}

// ---------------------------------------------------------------------------
// /mcp body decoder
// ---------------------------------------------------------------------------

/// Object keys: the ones the decoder looks at, often, and anything else.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop_oneof![
            Just("mcp_id"),
            Just("tool"),
            Just("arguments"),
            Just("jsonrpc"),
            Just("method"),
            Just("id"),
            Just("params"),
        ]
        .prop_map(String::from),
        1 => any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects shaped like a call, with each field present or not and of any
/// type.
fn call_like() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
        proptest::option::of(any::<String>()),
        proptest::option::of(json_value()),
    )
        .prop_map(|(mcp_id, tool, arguments, extra_name, extra)| {
            let mut map = Map::new();
            for (name, value) in [("mcp_id", mcp_id), ("tool", tool), ("arguments", arguments)] {
                if let Some(value) = value {
                    map.insert(name.into(), value);
                }
            }
            if let (Some(name), Some(value)) = (extra_name, extra) {
                map.insert(name, value);
            }
            Value::Object(map)
        })
}

/// Well-typed calls, so that the decoder's success path is exercised too.
fn good_call() -> impl Strategy<Value = Value> {
    (
        any::<String>(),
        any::<String>(),
        proptest::option::of(proptest::collection::btree_map(
            any::<String>(),
            json_value(),
            0..4,
        )),
        any::<bool>(),
    )
        .prop_map(|(mcp_id, tool, arguments, null_arguments)| {
            let mut call = json!({"mcp_id": mcp_id, "tool": tool});
            match arguments {
                Some(args) => call["arguments"] = Value::Object(args.into_iter().collect()),
                None if null_arguments => call["arguments"] = Value::Null,
                None => {}
            }
            call
        })
}

/// The decoder must answer `bytes` (whose JSON reading, if any, is
/// `value`) with exactly this: a call when the body is an object with
/// string `mcp_id` and `tool`, an object or null or no `arguments`, and
/// no `jsonrpc` member; `InvalidRequest` otherwise.
fn check_decoder(bytes: &[u8]) -> Result<(), TestCaseError> {
    let value: Option<Value> = serde_json::from_slice(bytes).ok();
    let expected = value.as_ref().and_then(|v| {
        let map = v.as_object()?;
        if map.contains_key("jsonrpc") {
            return None;
        }
        let mcp_id = map.get("mcp_id")?.as_str()?;
        let tool = map.get("tool")?.as_str()?;
        let arguments = match map.get("arguments") {
            None | Some(Value::Null) => None,
            Some(Value::Object(args)) => Some(args.clone()),
            Some(_) => return None,
        };
        Some((mcp_id.to_string(), tool.to_string(), arguments))
    });
    match (decode_call(bytes), expected) {
        (Ok(call), Some((mcp_id, tool, arguments))) => {
            prop_assert_eq!(call.mcp_id, mcp_id);
            prop_assert_eq!(call.tool, tool);
            prop_assert_eq!(call.arguments, arguments);
        }
        (Err(ApiError::InvalidRequest(message)), None) => {
            prop_assert!(message.starts_with("Invalid request body"), "{}", message);
        }
        (Ok(call), None) => prop_assert!(false, "accepted {call:?}"),
        (Err(e), _) => prop_assert!(false, "answered {e:?} for {value:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config::with_cases(1024))]

    #[test]
    fn decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_decoder(&bytes)?;
    }

    #[test]
    fn decoder_takes_any_json(value in json_value()) {
        check_decoder(value.to_string().as_bytes())?;
        check_decoder(&serde_json::to_vec_pretty(&value).unwrap())?;
    }

    #[test]
    fn decoder_takes_call_like_objects(value in prop_oneof![call_like(), good_call()]) {
        check_decoder(value.to_string().as_bytes())?;
    }

    #[test]
    fn decoder_takes_truncated_and_padded_json(value in good_call(), cut in any::<prop::sample::Index>(), pad in "[ \t\r\n]{0,3}[\\x00-\\x7f]{0,2}") {
        let text = value.to_string();
        let cut = cut.index(text.len() + 1);
        check_decoder(&text.as_bytes()[..cut])?;
        check_decoder(format!("{text}{pad}").as_bytes())?;
    }
}

// ---------------------------------------------------------------------------
// The whole router
// ---------------------------------------------------------------------------

/// One request a hostile client could send.
#[derive(Debug, Clone)]
struct Attempt {
    key: KeyHeader,
    body: BodyKind,
    from: Option<u8>,
}

#[derive(Debug, Clone)]
enum KeyHeader {
    None,
    /// Raw bytes in `Authorization` or `X-API-Key` (when they make a
    /// valid header value at all).
    Raw {
        x_api_key: bool,
        bytes: Vec<u8>,
    },
    /// A scheme and the real key, forged key or arbitrary text.
    Scheme {
        scheme: String,
        key: Which,
        x_api_key_too: bool,
    },
}

#[derive(Debug, Clone)]
enum Which {
    Real,
    Forged(usize),
    Text(String),
}

#[derive(Debug, Clone)]
enum BodyKind {
    Bytes(Vec<u8>),
    Json(Value),
    TooLarge,
}

fn attempt() -> impl Strategy<Value = Attempt> {
    let which = prop_oneof![
        2 => Just(Which::Real),
        1 => any::<usize>().prop_map(Which::Forged),
        1 => any::<String>().prop_map(Which::Text),
    ];
    let key = prop_oneof![
        1 => Just(KeyHeader::None),
        2 => (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(x_api_key, bytes)| KeyHeader::Raw { x_api_key, bytes }),
        3 => (
            prop_oneof![
                Just("ApiKey ".to_string()),
                Just("Bearer ".to_string()),
                Just("bearer  ".to_string()),
                Just(" APIKEY ".to_string()),
                Just(String::new()),
                "[ -~]{0,12}",
            ],
            which,
            any::<bool>(),
        )
            .prop_map(|(scheme, key, x_api_key_too)| KeyHeader::Scheme { scheme, key, x_api_key_too }),
    ];
    let body = prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(BodyKind::Bytes),
        3 => prop_oneof![json_value(), call_like(), good_call()].prop_map(BodyKind::Json),
        2 => json_value().prop_map(|params| {
            BodyKind::Json(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))
        }),
        1 => Just(BodyKind::TooLarge),
    ];
    (key, body, proptest::option::of(0u8..4)).prop_map(|(key, body, from)| Attempt {
        key,
        body,
        from,
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    router: Router,
    real: ApiKey,
    _gateway: Gateway,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("plexmcp.db")).expect("open store");
    let mut admin = store.reopen().expect("second connection");
    let org = admin.org("default").expect("default org");
    let req = KeyRequest {
        name: "real".into(),
        description: None,
        expires: "90d".into(),
        access: McpAccess::All,
    };
    let actor = Actor {
        user: "tester".into(),
        addr: None,
    };
    // No MCP is registered: nothing here can reach an upstream.
    let (_, real) = admin::create_key(&mut admin, &org, &req, &actor, Utc::now()).expect("key");
    let gateway = Gateway::new(store).expect("gateway");
    Fixture {
        _dir: dir,
        router: gateway.router(),
        real,
        _gateway: gateway,
    }
}

fn key_text(fx: &Fixture, which: &Which) -> String {
    match which {
        Which::Real => fx.real.expose().to_string(),
        Which::Forged(n) => {
            // One character of the secret part changed: a wrong tag.
            let mut bytes = fx.real.expose().as_bytes().to_vec();
            let at = KEY_PREFIX.len() + keys::ID_LEN + n % keys::SECRET_LEN;
            bytes[at] = if bytes[at] == b'z' { b'y' } else { b'z' };
            String::from_utf8(bytes).unwrap()
        }
        Which::Text(text) => text.clone(),
    }
}

fn build_request(fx: &Fixture, attempt: &Attempt) -> Request<Body> {
    let mut request = Request::builder().method(Method::POST).uri("/mcp");
    match &attempt.key {
        KeyHeader::None => {}
        KeyHeader::Raw { x_api_key, bytes } => {
            if let Ok(value) = HeaderValue::from_bytes(bytes) {
                let name = if *x_api_key {
                    "x-api-key"
                } else {
                    "authorization"
                };
                request = request.header(name, value);
            }
        }
        KeyHeader::Scheme {
            scheme,
            key,
            x_api_key_too,
        } => {
            let key = key_text(fx, key);
            if let Ok(value) = HeaderValue::from_str(&format!("{scheme}{key}")) {
                request = request.header(header::AUTHORIZATION, value);
            }
            if *x_api_key_too && let Ok(value) = HeaderValue::from_str(&key) {
                request = request.header("x-api-key", value);
            }
        }
    }
    let body = match &attempt.body {
        BodyKind::Bytes(bytes) => Body::from(bytes.clone()),
        BodyKind::Json(value) => Body::from(value.to_string()),
        BodyKind::TooLarge => Body::from(vec![b' '; MAX_BODY_BYTES + 1]),
    };
    let mut request = request.body(body).unwrap();
    if let Some(n) = attempt.from {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, n));
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 50_000)));
    }
    request
}

const REASONS: [&str; 5] = ["missing", "malformed", "not_found", "revoked", "expired"];

async fn check_router(fx: &Fixture, attempt: Attempt) -> Result<u16, TestCaseError> {
    let request = build_request(fx, &attempt);
    let response = fx
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("response body");
    let text = String::from_utf8_lossy(&bytes);

    // The real key got through and the body was JSON-RPC: MCP's own
    // answers (no upstream exists, so only errors, pings and empty lists).
    if status == StatusCode::ACCEPTED {
        prop_assert!(bytes.is_empty(), "202 with a body: {}", text);
        return Ok(202);
    }
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| TestCaseError::fail(format!("non-JSON body ({e}) with {status}: {text}")))?;
    if status == StatusCode::OK {
        prop_assert_eq!(
            &body["jsonrpc"],
            "2.0",
            "200 that is not JSON-RPC: {}",
            text
        );
        prop_assert!(
            body.get("result").is_some() != body.get("error").is_some(),
            "{}",
            text
        );
        return Ok(200);
    }

    let code = body["error"]["code"].as_str();
    prop_assert!(body["error"]["message"].is_string(), "{}", text);
    match status.as_u16() {
        400 => prop_assert_eq!(code, Some("invalid_request"), "{}", text),
        401 => {
            prop_assert_eq!(code, Some("invalid_api_key"), "{}", text);
            let reason = body["error"]["reason"].as_str().unwrap_or_default();
            prop_assert!(REASONS.contains(&reason), "{}", text);
            prop_assert_eq!(
                headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(HeaderValue::as_bytes),
                Some(&b"ApiKey"[..])
            );
        }
        403 => prop_assert_eq!(code, Some("unauthorized_mcp"), "{}", text),
        404 => prop_assert!(
            matches!(code, Some("unknown_tool" | "not_found")),
            "{}",
            text
        ),
        413 => prop_assert_eq!(code, Some("payload_too_large"), "{}", text),
        429 => {
            prop_assert_eq!(code, Some("rate_limited"), "{}", text);
            prop_assert!(headers.contains_key(header::RETRY_AFTER));
        }
        _ => prop_assert!(false, "undocumented status {status}: {text}"),
    }
    // The real key is never refused, wherever it is presented from.
    if let KeyHeader::Scheme {
        key: Which::Real,
        scheme,
        ..
    } = &attempt.key
    {
        let standard = ["ApiKey ", "Bearer ", "bearer  ", " APIKEY "];
        if standard.contains(&scheme.as_str()) {
            prop_assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::TOO_MANY_REQUESTS,
                "{status}: {text}"
            );
        }
    }
    Ok(status.as_u16())
}

#[test]
fn router_answers_any_key_header_and_body_as_documented() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fx = runtime.block_on(async {
        let fx = fixture();
        // Verified once up front, so it passes even from an address the
        // limiter has blocked by the time it is presented from there.
        let request = Request::post("/mcp")
            .header(
                header::AUTHORIZATION,
                format!("ApiKey {}", fx.real.expose()),
            )
            .body(Body::from("{}"))
            .unwrap();
        let response = fx.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        fx
    });
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let mut runner = TestRunner::new(Config::with_cases(768));
    let result = runner.run(&attempt(), |attempt| {
        let status = runtime.block_on(check_router(&fx, attempt))?;
        *seen.lock().unwrap().entry(status).or_default() += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner().unwrap();
    eprintln!("statuses seen (status: count): {seen:?}");
    // The cases reached every kind of answer that needs no upstream.
    for status in [200, 400, 401, 413, 429] {
        assert!(seen.contains_key(&status), "no {status} in {seen:?}");
    }
}
