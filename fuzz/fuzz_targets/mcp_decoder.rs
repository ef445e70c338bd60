//! The `POST /mcp` body decoder over arbitrary bytes: never a panic, only
//! a call request or `InvalidRequest`, and a decoded request is exactly
//! what the JSON said.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexmcp::server::{ApiError, decode_call};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    match decode_call(data) {
        Ok(call) => {
            let value: Value = serde_json::from_slice(data).expect("decoded, so it is JSON");
            assert_eq!(value["mcp_id"].as_str(), Some(call.mcp_id.as_str()));
            assert_eq!(value["tool"].as_str(), Some(call.tool.as_str()));
            match &value["arguments"] {
                Value::Null => assert!(call.arguments.is_none()),
                Value::Object(map) => assert_eq!(call.arguments.as_ref(), Some(map)),
                other => panic!("arguments {other} was accepted"),
            }
        }
        Err(ApiError::InvalidRequest(message)) => assert!(!message.is_empty()),
        Err(other) => panic!("decoder answered {other:?}"),
    }
});
