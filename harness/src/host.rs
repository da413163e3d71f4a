//! Facts about the machine that ran the client, recorded with each run.

pub struct HostFacts {
    pub name: Option<String>,
    pub os: String,
    pub arch: String,
    pub cpus: i32,
    pub memory_bytes: Option<i64>,
}

pub fn facts() -> HostFacts {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok());
    let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<i64>().ok())
            .map(|kb| kb * 1024)
    });
    HostFacts {
        name,
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(1),
        memory_bytes,
    }
}
