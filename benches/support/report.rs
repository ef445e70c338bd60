//! Small helpers the bench binaries share: command-line options, latency
//! percentiles, memory readings and number formatting. Each binary uses a
//! different part of this file.
#![allow(dead_code)]

use std::time::Duration;

/// `--name VALUE` from the command line, else the environment variable
/// `env`, else `default`. `cargo bench` adds a bare `--bench`, which is
/// ignored like every other flag this binary does not know.
pub fn option<T: std::str::FromStr>(name: &str, env: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    let flag = format!("--{name}");
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            Some(v.to_string())
        } else if *a == flag {
            args.get(i + 1).cloned()
        } else {
            None
        }
    });
    let text = from_args.or_else(|| std::env::var(env).ok());
    match text {
        Some(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("error: --{name} / {env}: cannot parse '{text}'");
            std::process::exit(2);
        }),
        None => default,
    }
}

/// True if `--name` is on the command line.
pub fn flag(name: &str) -> bool {
    let flag = format!("--{name}");
    std::env::args().any(|a| a == flag)
}

/// Sorted samples, for percentiles.
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn new(mut values: Vec<f64>) -> Samples {
        values.sort_by(f64::total_cmp);
        Samples(values)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile, `p` in 0..=100; 0 for no samples.
    pub fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        self.pct(50.0)
    }

    pub fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(0.0)
    }

    pub fn min(&self) -> f64 {
        self.0.first().copied().unwrap_or(0.0)
    }
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB, from `/proc/<pid>/status`.
pub fn memory_kib(pid: Option<u32>) -> Option<(u64, u64)> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets `VmHWM` of this process to its current RSS (Linux ≥ 4.0).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// A duration given in microseconds, printed with a fitting unit.
pub fn micros(us: f64) -> String {
    if us < 1.0 {
        format!("{:.0} ns", us * 1000.0)
    } else if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

pub fn dur(d: Duration) -> String {
    micros(d.as_secs_f64() * 1e6)
}

/// `12345.6` as `12,346`.
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "met" or "MISSED", for target lines.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The machine, for the README: CPU count and model.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`): unlike wall
/// time, it does not grow when other work on a shared machine takes the
/// core away.
pub fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU time the whole process has used, all threads together.
pub fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The 1-minute load average: how busy the shared machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU time used so far, in seconds: this process's threads summed by
/// name (a tokio runtime's threads share theirs), child processes by
/// command name as "child:node", and their children as "grandchild:node".
pub fn cpu_by_thread_name() -> std::collections::BTreeMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = std::collections::BTreeMap::new();
    let ticks = |stat: &str| -> Option<(String, u32, f64)> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // After the name: state, ppid, …; utime and stime are fields 14 and 15.
        let ppid = fields.get(1)?.parse().ok()?;
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((name, ppid, (utime + stime) / tick))
    };
    let me = std::process::id();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if let Some((name, _, secs)) = ticks(&stat) {
                let main = task.file_name().to_str() == Some(&me.to_string());
                let name = if main { "main".to_string() } else { name };
                *out.entry(name).or_insert(0.0) += secs;
            }
        }
    }
    // Child processes, and their children (e.g. a server's MCP processes).
    let mut procs = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for p in dir.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            if let Some((name, ppid, secs)) = ticks(&stat) {
                procs.push((pid, ppid, name, secs));
            }
        }
    }
    let children: Vec<u32> = procs.iter().filter(|p| p.1 == me).map(|p| p.0).collect();
    for (_, ppid, name, secs) in &procs {
        let group = if *ppid == me {
            format!("child:{name}")
        } else if children.contains(ppid) {
            format!("grandchild:{name}")
        } else {
            continue;
        };
        *out.entry(group).or_insert(0.0) += secs;
    }
    out
}
