// Runs a Flink SQL script on a local MiniCluster (Flink 1.20, the jars of pom.xml) and prints
// one JSON line: the process's CPU seconds and wall seconds since the JVM started, so start-up
// is included; run a tiny input the same way to measure start-up alone.
//
//   java <flags of run_flink in benches/src/flink.rs> -cp '<lib>/*' RunSql.java SCRIPT PARALLELISM

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

public class RunSql {
  public static void main(String[] args) throws Exception {
    Map<String, String> conf = new HashMap<>();
    conf.put("parallelism.default", args[1]);
    // HOP and SESSION windows need managed memory.
    conf.put("taskmanager.memory.managed.size", "256m");
    conf.put("taskmanager.memory.network.min", "64m");
    conf.put("taskmanager.memory.network.max", "64m");
    // As in the Nexmark benchmark's own Flink configuration.
    conf.put("table.exec.mini-batch.enabled", "true");
    conf.put("table.exec.mini-batch.allow-latency", "2s");
    conf.put("table.exec.mini-batch.size", "50000");
    TableEnvironment env = TableEnvironment.create(
        EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(Configuration.fromMap(conf)).build());
    StringBuilder script = new StringBuilder();
    for (String line : Files.readAllLines(Path.of(args[0]))) {
      if (!line.strip().startsWith("--")) {
        script.append(line).append('\n');
      }
    }
    for (String statement : script.toString().split(";\\s*\\n")) {
      String sql = statement.strip();
      if (sql.endsWith(";")) {
        sql = sql.substring(0, sql.length() - 1);
      }
      if (sql.isEmpty()) {
        continue;
      }
      TableResult result = env.executeSql(sql);
      if (sql.toUpperCase(Locale.ROOT).startsWith("INSERT")) {
        result.await();
      }
    }
    double cpu = ProcessHandle.current().info().totalCpuDuration().map(d -> d.toNanos() / 1e9).orElse(-1.0);
    double wall = ManagementFactory.getRuntimeMXBean().getUptime() / 1e3;
    System.out.printf(Locale.ROOT, "{\"cpu_seconds\":%.3f,\"wall_seconds\":%.3f}%n", cpu, wall);
    System.exit(0);
  }
}
