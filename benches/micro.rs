//! `cargo bench --bench micro`: the request path's pieces, timed alone.
//!
//! - key parse + tag check (`keys::parse_and_check`);
//! - cached verification (`Verifier::authenticate` with a warm cache);
//! - cold argon2 verification (`keys::verify_hash`, and a cold verifier's
//!   first `authenticate`);
//! - argon2 once per key: many threads hammer one key on fresh verifiers,
//!   and a key change invalidates the key cache, counting argon2 runs;
//! - the usage writer: `Store::record_usage` batches, and events through
//!   the `UsageSink` channel at a fixed offered rate and flat out.
//!
//! Options: `--samples N` (default 15) timing samples per measurement,
//! `--rounds N` (default 40) cold verifiers for the argon2-once check,
//! `--only cached,usage,…` to run some parts (parse, cached, argon2, once,
//! usage), e.g. under a profiler.

#[path = "support/report.rs"]
mod report;

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use chrono::Utc;
use plexmcp::admin::{self, KeyRequest, McpRequest};
use plexmcp::auth::Verifier;
use plexmcp::domain::{Actor, McpAccess};
use plexmcp::keys;
use plexmcp::server::usage_writer::{QUEUE_CAPACITY, UsageWriter};
use plexmcp::store::{Store, UsageEvent};

use report::{Samples, micros, thousands, verdict};

fn main() -> anyhow::Result<()> {
    let samples: usize = report::option("samples", "PLEXMCP_BENCH_SAMPLES", 15);
    let rounds: usize = report::option("rounds", "PLEXMCP_BENCH_ROUNDS", 40);
    let only: String = report::option("only", "PLEXMCP_BENCH_ONLY", String::new());
    let run = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    println!(
        "plexmcp micro-benchmarks; {}; load average {}",
        report::machine(),
        report::load_average()
    );
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("micro.db");
    let key = seed(&db)?;
    let store = Store::open(&db)?;
    let secret = store.server_secret()?;

    // Key parse + tag check.
    if run("parse") {
        parse_and_tag(&key, &secret, samples);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if run("cached") {
        let verifier = Verifier::new(store.reopen()?)?;
        let (first, cold) = runtime.block_on(async {
            let started = Instant::now();
            let ok = verifier.authenticate(Some(&key), Utc::now()).await.is_ok();
            (ok, started.elapsed())
        });
        anyhow::ensure!(first, "the seeded key does not authenticate");
        cached_verification(&runtime, &verifier, &key, samples);
        let check = per_call(samples, 100_000, || black_box(store.data_version()).is_ok());
        println!(
            "  of which the cross-process change check (PRAGMA data_version, a WAL read transaction): median {}",
            micros(check.median())
        );
        println!(
            "  (a cold verifier's first authenticate took {})",
            report::dur(cold)
        );
    }
    let hash = store_hash(&store, &key)?;
    let argon = Samples::new(
        (0..if run("argon2") || run("once") { 5 } else { 0 })
            .map(|_| {
                let started = Instant::now();
                assert!(keys::verify_hash(&key, &hash));
                started.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    );
    if run("argon2") {
        println!(
            "cold argon2id verification (m=19 MiB, t=2, p=1): median {}, min {}",
            micros(argon.median()),
            micros(argon.min()),
        );
    }
    if run("once") {
        argon2_once(&db, &key, rounds, argon.median())?;
    }
    if run("usage") {
        usage_writer(&db, samples)?;
    }
    Ok(())
}

fn parse_and_tag(key: &str, secret: &keys::ServerSecret, samples: usize) {
    let parse = per_call(samples, 200_000, || {
        black_box(keys::parse_and_check(black_box(key), secret)).is_ok()
    });
    println!();
    println!(
        "key parse + tag check: median {}, min {}   (target ≤ 2 µs: {})",
        micros(parse.median()),
        micros(parse.min()),
        verdict(parse.median() <= 2.0)
    );
    let fingerprint = per_call(samples, 200_000, || {
        black_box(keys::fingerprint(black_box(key)))[0] == 0
    });
    println!(
        "  (the cache's fingerprint, SHA-256 of the key: median {})",
        micros(fingerprint.median())
    );
}

fn cached_verification(
    runtime: &tokio::runtime::Runtime,
    verifier: &Verifier,
    key: &str,
    samples: usize,
) {
    let now = Utc::now();
    let cached = Samples::new(
        (0..samples)
            .map(|_| {
                runtime.block_on(async {
                    let n = 100_000;
                    let started = Instant::now();
                    for _ in 0..n {
                        black_box(
                            verifier
                                .authenticate(Some(black_box(key)), now)
                                .await
                                .is_ok(),
                        );
                    }
                    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
                })
            })
            .collect(),
    );
    println!(
        "cached verification (Verifier::authenticate, warm): median {}, min {}   (target ≤ 2 µs: {})",
        micros(cached.median()),
        micros(cached.min()),
        verdict(cached.median() <= 2.0)
    );
}

/// A database with one MCP and one key that may use it; returns the key.
fn seed(db: &Path) -> anyhow::Result<String> {
    let mut store = Store::open(db)?;
    let org = store.org("default")?;
    let actor = Actor {
        user: "bench".into(),
        addr: None,
    };
    let now = Utc::now();
    let mcp = McpRequest {
        slug: "es".into(),
        stdio: Some("true".into()),
        ..McpRequest::default()
    };
    admin::add_mcp(&mut store, &org, &mcp, &actor, now)?;
    let request = KeyRequest {
        name: "bench".into(),
        description: None,
        expires: "never".into(),
        access: McpAccess::only_mcps(["es"]),
    };
    let (_, key) = admin::create_key(&mut store, &org, &request, &actor, now)?;
    Ok(key.expose().to_string())
}

fn store_hash(store: &Store, key: &str) -> anyhow::Result<String> {
    let parsed = keys::parse(key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, hash) = store
        .key_for_auth(parsed.id())?
        .ok_or_else(|| anyhow::anyhow!("seeded key not found"))?;
    Ok(hash)
}

/// Microseconds per call of `f`, one sample per batch of `n` calls.
fn per_call(samples: usize, n: u32, mut f: impl FnMut() -> bool) -> Samples {
    Samples::new(
        (0..samples)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..n {
                    black_box(f());
                }
                started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
            })
            .collect(),
    )
}

/// Counts argon2 runs for one key: each round, a fresh verifier is
/// hammered by more threads than cores (so threads get preempted at every
/// point of `authenticate`), all presenting the same valid key. A call
/// that ends more than half an argon2 run after the first success ran an
/// argon2 of its own. Then a key change elsewhere must not cost argon2.
fn argon2_once(db: &Path, key: &str, rounds: usize, argon_us: f64) -> anyhow::Result<()> {
    const THREADS: usize = 6;
    const CALLS: usize = 200;
    let mut extra_runs = 0;
    let mut worst_ratio: f64 = 0.0;
    let started = Instant::now();
    for _ in 0..rounds {
        let verifier = Arc::new(Verifier::new(Store::open(db)?)?);
        let barrier = Arc::new(Barrier::new(THREADS));
        let now = Utc::now();
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (verifier, barrier, key) = (verifier.clone(), barrier.clone(), key.to_string());
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    barrier.wait();
                    runtime.block_on(async {
                        let mut ends = Vec::with_capacity(CALLS);
                        for _ in 0..CALLS {
                            let t = Instant::now();
                            let ok = verifier.authenticate(Some(&key), now).await.is_ok();
                            assert!(ok, "valid key refused");
                            ends.push((t, Instant::now()));
                        }
                        ends
                    })
                })
            })
            .collect();
        let calls: Vec<(Instant, Instant)> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        let slow_after = Duration::from_secs_f64(argon_us / 4.0 / 1e6);
        let slow: Vec<Instant> = calls
            .iter()
            .filter(|(s, e)| e.duration_since(*s) > slow_after)
            .map(|(_, e)| *e)
            .collect();
        let first = slow.iter().min().copied();
        let last = slow.iter().max().copied();
        if let (Some(first), Some(last)) = (first, last) {
            let spread = last.duration_since(first).as_secs_f64() * 1e6 / argon_us;
            worst_ratio = worst_ratio.max(spread);
            if spread > 0.5 {
                extra_runs += 1;
            }
        }
        anyhow::ensure!(verifier.verified_count() == 1, "one key verified");
    }
    println!();
    println!(
        "argon2 once per key: {rounds} cold verifiers × {THREADS} threads × {CALLS} calls with one key ({:.1} s): \
         rounds with a second argon2 run: {extra_runs} (latest slow call ended {worst_ratio:.2} argon2 runs after the first)",
        started.elapsed().as_secs_f64()
    );

    // A change to another key invalidates the key cache, not the verified set.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let verifier = Verifier::new(Store::open(db)?)?;
    let now = Utc::now();
    runtime.block_on(verifier.authenticate(Some(key), now)).ok();
    let mut store = Store::open(db)?;
    let org = store.org("default")?;
    let actor = Actor {
        user: "bench".into(),
        addr: None,
    };
    let request = KeyRequest {
        name: format!("other-{}", Utc::now().timestamp_micros()),
        description: None,
        expires: "never".into(),
        access: McpAccess::All,
    };
    admin::create_key(&mut store, &org, &request, &actor, now)?;
    let t = Instant::now();
    let ok = runtime
        .block_on(verifier.authenticate(Some(key), now))
        .is_ok();
    let after_change = t.elapsed();
    println!(
        "  after another key was created (key cache dropped): authenticate {} ({}), verified keys {}   (target: argon2 at most once per key per process: {})",
        report::dur(after_change),
        if ok { "accepted" } else { "REFUSED" },
        verifier.verified_count(),
        verdict(extra_runs == 0 && ok && after_change.as_secs_f64() * 1e6 < argon_us / 4.0)
    );
    Ok(())
}

fn event(i: u64, key_row: i64, at_ms: i64) -> UsageEvent {
    UsageEvent {
        key_row,
        mcp_slug: Some("es".into()),
        tool: Some(if i.is_multiple_of(10) { "add" } else { "echo" }.into()),
        outcome: if i.is_multiple_of(50) {
            "upstream_error"
        } else {
            "ok"
        },
        http_status: if i.is_multiple_of(50) { 502 } else { 200 },
        latency_us: 500 + i % 1000,
        client_ip: Some(format!("127.0.0.{}", 1 + i % 4)),
        user_agent: Some("plexmcp-bench".into()),
        at_ms,
    }
}

fn usage_writer(db: &Path, samples: usize) -> anyhow::Result<()> {
    let key_row = {
        let store = Store::open(db)?;
        let org = store.org("default")?;
        store.list_keys(org.row_id)?[0].row_id
    };
    let now_ms = Utc::now().timestamp_millis();
    println!();
    println!("usage writer:");

    // Store::record_usage, as the writer thread calls it (synchronous=NORMAL).
    let mut store = Store::open(db)?;
    store.relax_durability()?;
    let mut next = 0u64;
    for batch in [1usize, 64, 1024, 8192] {
        // Fresh events for every call, in time order, as the server makes them.
        let per_sample = (100_000 / batch).max(200);
        let mut rates = Vec::new();
        for _ in 0..samples.min(5) {
            let batches: Vec<Vec<UsageEvent>> = (0..per_sample)
                .map(|_| {
                    (0..batch)
                        .map(|_| {
                            next += 1;
                            event(next, key_row, now_ms + next as i64)
                        })
                        .collect()
                })
                .collect();
            let started = Instant::now();
            for events in &batches {
                store.record_usage(events)?;
            }
            rates.push((per_sample * batch) as f64 / started.elapsed().as_secs_f64());
        }
        let rates = Samples::new(rates);
        println!(
            "  Store::record_usage, batches of {batch:>5}: median {} events/s",
            thousands(rates.median())
        );
    }

    // Through the channel: a fixed offered rate, then flat out.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for rate in [50_000u64, 100_000] {
        let writer = UsageWriter::start(Store::open(db)?)?;
        let sink = writer.sink();
        let seconds = 5;
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_secs(seconds) {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                sink.record(event(sent, key_row, now_ms + sent as i64));
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let offered_for = started.elapsed();
        runtime.block_on(sink.flush());
        let drained = started.elapsed() - offered_for;
        let stats = sink.stats();
        let (written, dropped) = (
            stats.written.load(Ordering::Relaxed),
            stats.dropped.load(Ordering::Relaxed),
        );
        println!(
            "  UsageSink at {} events/s offered for {seconds} s: written {}, dropped {dropped}, backlog drained {} after the last   (target ≥ 50,000/s sustained: {})",
            thousands(rate as f64),
            thousands(written as f64),
            report::dur(drained),
            if rate == 50_000 {
                verdict(dropped == 0 && written == sent && drained < Duration::from_secs(1))
            } else if dropped == 0 {
                "kept up"
            } else {
                "fell behind"
            }
        );
        drop(sink);
        runtime.block_on(writer.finish());
    }

    // Flat out: keep the queue half full, never dropping, and count.
    let writer = UsageWriter::start(Store::open(db)?)?;
    let sink = writer.sink();
    let stats = sink.stats().clone();
    let total = 1_000_000u64;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let done = stats.written.load(Ordering::Relaxed) + stats.dropped.load(Ordering::Relaxed);
        if sent - done < QUEUE_CAPACITY as u64 / 2 {
            sink.record(event(sent, key_row, now_ms + sent as i64));
            sent += 1;
        } else {
            std::thread::yield_now();
        }
    }
    runtime.block_on(sink.flush());
    let took = started.elapsed();
    println!(
        "  UsageSink flat out: {} events in {:.2} s = {} events/s, dropped {}",
        thousands(total as f64),
        took.as_secs_f64(),
        thousands(stats.written.load(Ordering::Relaxed) as f64 / took.as_secs_f64()),
        stats.dropped.load(Ordering::Relaxed)
    );
    drop(sink);
    runtime.block_on(writer.finish());
    writer_cost(db, key_row)?;
    Ok(())
}

/// The writer's CPU per event at a steady request rate, as the gateway sees
/// it: events arrive a few at a time, so the writer commits tiny batches and
/// pays a transaction (and its WAL pages) for each. Compared with a copy of
/// its loop that waits a moment after the first event (group commit).
fn writer_cost(db: &Path, key_row: i64) -> anyhow::Result<()> {
    const RATE: u64 = 30_000;
    const SECONDS: f64 = 3.0;
    println!(
        "  writer CPU at {} events/s arriving a few at a time (as under the gateway benchmark):",
        thousands(RATE as f64)
    );
    // The gateway's own writer.
    {
        let writer = UsageWriter::start(Store::open(db)?)?;
        let sink = writer.sink();
        let before = report::cpu_by_thread_name()
            .get("usage-writer")
            .copied()
            .unwrap_or(0.0);
        let sent = offer(RATE, SECONDS, |e| sink.record(e), key_row);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(sink.flush());
        let after = report::cpu_by_thread_name()
            .get("usage-writer")
            .copied()
            .unwrap_or(0.0);
        println!(
            "    UsageWriter as it is:          {:>5.1} µs CPU per event ({:.2} of a core)",
            (after - before) * 1e6 / sent as f64,
            (after - before) / SECONDS
        );
        drop(sink);
        runtime.block_on(writer.finish());
    }
    // The same loop with a linger before each commit.
    for linger_ms in [0u64, 2, 10] {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<UsageEvent>(QUEUE_CAPACITY);
        let mut store = Store::open(db)?;
        let linger = Duration::from_millis(linger_ms);
        let thread = std::thread::spawn(move || -> (Duration, u64) {
            store.relax_durability().expect("pragma");
            let (mut batch, mut commits) = (Vec::new(), 0);
            let cpu = report::thread_cpu();
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                std::thread::sleep(linger);
                while let Ok(e) = rx.try_recv() {
                    batch.push(e);
                }
                store.record_usage(&batch).expect("record_usage");
                commits += 1;
                batch.clear();
            }
            (report::thread_cpu() - cpu, commits)
        });
        let sent = offer(
            RATE,
            SECONDS,
            |e| {
                let _ = tx.try_send(e);
            },
            key_row,
        );
        drop(tx);
        let (cpu, commits) = thread.join().expect("writer thread");
        println!(
            "    same loop, {linger_ms:>2} ms linger:        {:>5.1} µs CPU per event ({:.2} of a core), {} events per commit",
            cpu.as_secs_f64() * 1e6 / sent as f64,
            cpu.as_secs_f64() / SECONDS,
            sent / commits.max(1)
        );
    }
    Ok(())
}

/// Offers `rate` events per second for `seconds`, a few every 100 µs;
/// returns how many were offered.
fn offer(rate: u64, seconds: f64, mut send: impl FnMut(UsageEvent), key_row: i64) -> u64 {
    let now_ms = Utc::now().timestamp_millis();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            send(event(sent, key_row, now_ms + sent as i64));
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    sent
}
