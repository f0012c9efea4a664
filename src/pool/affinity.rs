//! CPU affinity for workers, from a list in Valkey's `server-cpulist` syntax.

use std::fmt;

/// A cpulist that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuListError(String);

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cpulist: {}", self.0)
    }
}

impl std::error::Error for CpuListError {}

/// Parses a comma-separated list of CPUs, ranges and strided ranges, as
/// Valkey's `setcpuaffinity` accepts: `0-3,8`, `0-7:2`. Returns the CPUs in
/// the order given, without duplicates.
pub fn parse_cpulist(list: &str) -> Result<Vec<usize>, CpuListError> {
    let bad = |why: &str| CpuListError(format!("{list:?}: {why}"));
    let number = |s: &str| s.parse::<usize>().map_err(|_| bad("expected a CPU number"));

    let mut cpus = Vec::new();
    for item in list.split(',') {
        let (range, stride) = match item.split_once(':') {
            Some((range, stride)) => (range, number(stride)?),
            None => (item, 1),
        };
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (number(first)?, number(last)?),
            None => (number(range)?, number(range)?),
        };
        if first > last || stride == 0 {
            return Err(bad("empty range or zero stride"));
        }
        for cpu in (first..=last).step_by(stride) {
            if !cpus.contains(&cpu) {
                cpus.push(cpu);
            }
        }
    }
    Ok(cpus)
}

/// Restricts the calling thread to `cpus`. CPUs beyond what the kernel's
/// set can name are ignored; failure leaves the affinity unchanged, as
/// Valkey's own `setcpuaffinity` does.
pub(crate) fn pin_current_thread(cpus: &[usize]) {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let capacity = 8 * std::mem::size_of::<libc::cpu_set_t>();
    for &cpu in cpus.iter().filter(|&&cpu| cpu < capacity) {
        // SAFETY: `cpu` is below the set's capacity (filtered above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 means the
    // calling thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valkey_cpulists() {
        assert_eq!(parse_cpulist("0-3,8"), Ok(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpulist("0-7:2"), Ok(vec![0, 2, 4, 6]));
        assert_eq!(parse_cpulist("5"), Ok(vec![5]));
        assert_eq!(parse_cpulist("1,1,0-1"), Ok(vec![1, 0]));
    }

    #[test]
    fn rejects_malformed_cpulists() {
        for bad in ["", "a", "3-1", "0-", "-1", "0-4:0", "1,,2"] {
            assert!(parse_cpulist(bad).is_err(), "{bad:?} parsed");
        }
    }
}
