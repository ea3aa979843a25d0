//! Percentiles, a shared monotonic clock, and the counters of a process read from `/proc`.

use std::collections::BTreeMap;
use std::time::Instant;

/// Microseconds since the start of the run, shared by the writers and the receiver (one
/// process, one monotonic clock), so a timestamp written into a request can be compared with
/// the moment its push arrives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub(crate) fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Microseconds since the start.
    pub(crate) fn us(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// The nearest-rank percentile `p` (0 to 100) of sorted values; `None` when empty.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p90 and p99 of microsecond values, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Quantiles {
    /// The quantiles of `values` (microseconds); `None` when empty.
    pub(crate) fn of_us(mut values: Vec<u64>) -> Option<Quantiles> {
        values.sort_unstable();
        let ms = |p| percentile(&values, p).map(|v| v as f64 / 1000.0);
        Some(Quantiles {
            p50: ms(50.0)?,
            p90: ms(90.0)?,
            p99: ms(99.0)?,
        })
    }

    /// `p50 / p90 / p99` in milliseconds.
    pub(crate) fn show(q: Option<Quantiles>) -> String {
        match q {
            Some(q) => format!("{} / {} / {}", ms(q.p50), ms(q.p90), ms(q.p99)),
            None => "-".into(),
        }
    }
}

/// A number of milliseconds with a precision that suits its size.
pub(crate) fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A whole number with thousands separators.
pub(crate) fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// User plus system CPU time of a process, in clock ticks (`/proc/<pid>/stat` fields 14 and
/// 15), all threads included.
pub(crate) fn cpu_ticks(pid: &str) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat: {stat}"),
        )
    })
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces: count from the
    // last ')'. Field 3 (state) is then the first one.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// User plus system CPU ticks of each live thread of a process, summed by thread name with
/// a trailing `-<number>` left out (`sender-3` counts as `sender`). A thread that exited is
/// no longer counted.
pub(crate) fn thread_cpu_ticks(pid: &str) -> std::io::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = entry?.path().join("stat");
        // A thread may exit between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let (Some(name), Some(ticks)) = (thread_name(&stat), parse_cpu_ticks(&stat)) {
            *out.entry(name).or_insert(0) += ticks;
        }
    }
    Ok(out)
}

/// The name of a thread from its `stat` line, without a trailing `-<number>`.
fn thread_name(stat: &str) -> Option<String> {
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let base = match name.rsplit_once('-') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    };
    Some(base.to_string())
}

/// Peak resident set size of a process (`VmHWM` of `/proc/<pid>/status`), in KiB.
pub(crate) fn peak_rss_kib(pid: &str) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "no VmHWM in /proc status")
        })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, the value Linux reports to user space,
/// when `getconf` is missing).
pub(crate) fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn thread_names_lose_their_number() {
        let stat = |n: &str| format!("7 ({n}) S 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 9 0 1 2 3");
        assert_eq!(thread_name(&stat("sender-12")).as_deref(), Some("sender"));
        assert_eq!(
            thread_name(&stat("writesync-commi")).as_deref(),
            Some("writesync-commi")
        );
        assert_eq!(thread_name(&stat("a-")).as_deref(), Some("a-"));
        assert_eq!(parse_cpu_ticks(&stat("sender-1")), Some(7));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
