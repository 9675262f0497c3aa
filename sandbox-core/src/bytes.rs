/// Formats a byte count the way the truncation marker shows it: `512B`, `48.8KB`,
/// `1.2MB` (binary units, one decimal, as the seed executor prints them).
///
/// ```
/// assert_eq!(sandbox_core::format_bytes(50_000), "48.8KB");
/// assert_eq!(sandbox_core::format_bytes(1_258_291), "1.2MB");
/// ```
pub fn format_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * 1024 * 1024;
    match bytes {
        b if b < KIB => format!("{b}B"),
        b if b < MIB => format!("{:.1}KB", b as f64 / KIB as f64),
        // The seed stops at MB; a GiB-sized flood reads better as GB.
        b if b < GIB => format!("{:.1}MB", b as f64 / MIB as f64),
        b => format!("{:.1}GB", b as f64 / GIB as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::format_bytes;

    #[test]
    fn bytes_below_one_kib_print_exactly() {
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(1023), "1023B");
    }

    #[test]
    fn kib_and_mib_print_one_decimal() {
        assert_eq!(format_bytes(1024), "1.0KB");
        assert_eq!(format_bytes(50_000), "48.8KB");
        assert_eq!(format_bytes(1_048_576), "1.0MB");
        assert_eq!(format_bytes(1_200_000), "1.1MB");
    }

    #[test]
    fn gib_sized_counts_print_as_gb() {
        assert_eq!(format_bytes(1 << 30), "1.0GB");
    }
}
