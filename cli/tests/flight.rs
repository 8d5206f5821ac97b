//! `streamsql ... --flight`: the README's ADBC snippet against `pipelines/netflow-live.sql`, and
//! a bounded job that keeps serving after its pipelines finish. Real binary, real Python ADBC
//! client (installed by `scripts/flight-clients.sh`), stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> String {
    let output = Command::new("bash")
        .arg(repo().join("scripts/flight-clients.sh"))
        .arg("python")
        .output()
        .expect("run scripts/flight-clients.sh");
    assert!(output.status.success(), "flight-clients.sh failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A running `streamsql` and the lines of its stderr as they come.
struct Streamsql {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streamsql {
    fn start(args: &[&str]) -> Streamsql {
        let mut child = Command::new(env!("CARGO_BIN_EXE_streamsql"))
            .current_dir(repo())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start streamsql");
        let stderr: ChildStderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streamsql { child, lines }
    }

    /// Waits for a stderr line containing `text`; returns it.
    fn wait_for(&self, text: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("streamsql never printed '{text}'; it printed:\n{}", seen.join("\n")),
            }
        }
    }

    /// The `host:port` the server announced.
    fn address(&self) -> String {
        let line = self.wait_for("serving live tables on grpc://");
        line.rsplit("grpc://").next().and_then(|rest| rest.split_whitespace().next()).expect("an address").to_string()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "streamsql did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Streamsql {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python block after `<!-- adbc-snippet -->` in README.md.
fn readme_snippet() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let after = readme.split("<!-- adbc-snippet -->").nth(1).expect("README.md has an <!-- adbc-snippet --> marker");
    let block = after.split("```python").nth(1).expect("a ```python block after the marker");
    block.split("```").next().expect("a closed block").to_string()
}

fn run_python(code: &str) -> String {
    let output = Command::new(python()).arg("-c").arg(code).output().expect("run python");
    assert!(
        output.status.success(),
        "python failed:\n{}\n--- code ---\n{code}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_readme_snippet_reads_netflow_live_while_it_runs() {
    let streamsql = Streamsql::start(&["-f", "pipelines/netflow-live.sql", "--flight", "127.0.0.1:0"]);
    let address = streamsql.address();
    let snippet = readme_snippet();
    assert!(snippet.lines().filter(|l| !l.trim().is_empty()).count() <= 5, "the README promises five lines");
    let code = snippet.replace("127.0.0.1:50051", &address);
    // The generator runs in real time: wait for the first windows and updates to land.
    std::thread::sleep(Duration::from_secs(3));
    let first = run_python(&code);
    assert!(first.contains("src_ip") && first.contains("flows"), "the snippet printed:\n{first}");
    assert!(first.contains("10."), "the snippet printed no addresses:\n{first}");

    // Totals grow while the job runs, in all three live tables.
    let totals = "import adbc_driver_flightsql.dbapi as f, json\n\
        with f.connect('grpc://ADDR', autocommit=True) as c, c.cursor() as cur:\n\
        \x20   out = []\n\
        \x20   for q in ['SELECT SUM(flows) FROM src_activity', 'SELECT SUM(flows) FROM protocol_bytes', 'SELECT COUNT(*) FROM flow_counts']:\n\
        \x20       cur.execute(q); out.append(cur.fetchone()[0] or 0)\n\
        \x20   print(json.dumps(out))\n"
        .replace("ADDR", &address);
    let before: Vec<i64> = serde_json::from_str(run_python(&totals).trim()).expect("JSON");
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<i64> = serde_json::from_str(run_python(&totals).trim()).expect("JSON");
    assert!(after[0] > before[0] && after[1] > before[1], "updating tables grew: {before:?} -> {after:?}");
    assert!(after[2] >= before[2] && after[2] > 0, "windows arrived: {before:?} -> {after:?}");

    let status = streamsql.terminate();
    assert_eq!(status.code(), Some(143), "stopped by SIGTERM (128 + 15): {status:?}");
}

#[test]
fn a_bounded_job_keeps_serving_until_sigterm() {
    let dir = std::env::temp_dir().join(format!("streamsql-cli-flight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let script = dir.join("job.sql");
    std::fs::write(
        &script,
        "CREATE TABLE flows WITH ('connector' = 'netflow', 'number-of-rows' = '5000');\n\
         CREATE MATERIALIZED VIEW per_type AS SELECT flow_type, COUNT(*) AS n FROM flows GROUP BY flow_type;\n",
    )
    .expect("write job.sql");
    let path = script.to_string_lossy().into_owned();
    let streamsql = Streamsql::start(&["-f", &path, "--flight", "127.0.0.1:0"]);
    let address = streamsql.address();
    streamsql.wait_for("pipelines finished; serving live tables");
    let code = format!(
        "import adbc_driver_flightsql.dbapi as f\n\
         with f.connect('grpc://{address}', autocommit=True) as c, c.cursor() as cur:\n\
         \x20   cur.execute('SELECT SUM(n) FROM per_type'); print(cur.fetchone()[0])\n\
         \x20   cur.execute(\"SELECT DATE_FORMAT(TIMESTAMP '2024-05-06 07:08:09', 'yyyy/MM/dd') FROM per_type LIMIT 1\")\n\
         \x20   print(cur.fetchone()[0])\n"
    );
    // The binary's Flight SQL server has Flink's DATE_FORMAT, not DataFusion's strftime one.
    assert_eq!(run_python(&code).trim(), "5000\n2024/05/06");
    let status = streamsql.terminate();
    assert_eq!(status.code(), Some(0), "a finished job stopped while serving exits 0: {status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
