//! Found cases kept as files: `tests/fuzz-regressions/<kind>-<hash>.sql`, a header of `-- fuzz:`
//! lines (what failed, how it was found) over the script. The tests replay every file.

use std::path::{Path, PathBuf};

use super::supervise::Kind;

/// The folder regression cases are kept in, in the source tree.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions")
}

const HEADER: &str = "-- fuzz:";

/// Writes `sql` as a regression case; returns its path (an existing file with the same script
/// is reused).
pub fn save(dir: &Path, kind: Kind, detail: &str, origin: &str, sql: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}-{:016x}.sql", kind.name(), fnv1a(sql.as_bytes())));
    if path.exists() {
        return Ok(path);
    }
    let what = detail.lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join(" | ");
    let mut text = format!("{HEADER} {} {}\n{HEADER} {origin}\n", kind.name(), one_line(&what));
    text.push_str(sql);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The script of a regression file: its text without the header lines.
pub fn script(text: &str) -> &str {
    let mut rest = text;
    while rest.starts_with(HEADER) {
        rest = rest.split_once('\n').map_or("", |(_, after)| after);
    }
    rest
}

/// Every `.sql` file in `dir`, sorted by name (none when the folder does not exist).
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::script;

    #[test]
    fn the_header_is_not_part_of_the_script() {
        assert_eq!(script("-- fuzz: panic x\n-- fuzz: seed 1\nSELECT 1;\n"), "SELECT 1;\n");
        assert_eq!(script("-- other comment\nSELECT 1;"), "-- other comment\nSELECT 1;");
    }
}
