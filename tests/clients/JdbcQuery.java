// Runs SQL through the Arrow Flight SQL JDBC driver and prints one JSON line per query.
//
//   java --add-opens=java.base/java.nio=ALL-UNNAMED [-Dmetadata=true] -cp JAR \
//       tests/clients/JdbcQuery.java 'jdbc:arrow-flight-sql://127.0.0.1:PORT/?useEncryption=false[&token=T]' SQL...
//
// JAR is `scripts/flight-clients.sh jdbc-jar`. Each query prints {"sql", "columns", "rows"}: numbers
// and booleans as JSON numbers/booleans (non-finite floats as strings), timestamps as epoch
// milliseconds, anything else as its toString(). With -Dmetadata=true a last line
// {"tables", "catalogs"} comes from DatabaseMetaData. On an SQLException: {"error"} (plus "sql" when
// a query failed) and exit 2. Non-ASCII is written as JSON unicode escapes: the same in any locale.
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;
import java.util.TimeZone;

public class JdbcQuery {
    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: JdbcQuery URL [SQL...]");
            System.exit(64);
        }
        // The driver shifts timestamps by the JVM's zone offset (twice, as of 18.3.0) unless that
        // zone is UTC: pin it so epoch milliseconds come out right on any machine.
        TimeZone.setDefault(TimeZone.getTimeZone("UTC"));
        String current = null;
        // The driver's gRPC threads would keep the JVM alive: always leave through System.exit.
        try (Connection conn = DriverManager.getConnection(args[0])) {
            for (int i = 1; i < args.length; i++) {
                current = args[i];
                query(conn, current);
            }
            current = null;
            if (Boolean.getBoolean("metadata")) {
                metadata(conn);
            }
        } catch (SQLException e) {
            String message = e.getMessage() != null ? e.getMessage() : e.toString();
            System.out.println(current == null
                    ? "{\"error\":" + str(message) + "}"
                    : "{\"sql\":" + str(current) + ",\"error\":" + str(message) + "}");
            System.out.flush();
            System.exit(2);
        }
        System.out.flush();
        System.exit(0);
    }

    static void query(Connection conn, String sql) throws SQLException {
        try (Statement stmt = conn.createStatement(); ResultSet rs = stmt.executeQuery(sql)) {
            ResultSetMetaData md = rs.getMetaData();
            int n = md.getColumnCount();
            List<String> columns = new ArrayList<>();
            for (int c = 1; c <= n; c++) {
                columns.add(str(md.getColumnLabel(c)));
            }
            List<String> rows = new ArrayList<>();
            while (rs.next()) {
                List<String> row = new ArrayList<>();
                for (int c = 1; c <= n; c++) {
                    row.add(value(rs, c, md.getColumnType(c)));
                }
                rows.add("[" + String.join(",", row) + "]");
            }
            System.out.println("{\"sql\":" + str(sql) + ",\"columns\":[" + String.join(",", columns)
                    + "],\"rows\":[" + String.join(",", rows) + "]}");
            System.out.flush();
        }
    }

    static String value(ResultSet rs, int c, int type) throws SQLException {
        if (type == Types.TIMESTAMP || type == Types.TIMESTAMP_WITH_TIMEZONE) {
            Timestamp ts = rs.getTimestamp(c);
            return ts == null ? "null" : Long.toString(ts.getTime());
        }
        Object v = rs.getObject(c);
        if (v == null) {
            return "null";
        }
        if (v instanceof Boolean) {
            return v.toString();
        }
        if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            return Double.isFinite(d) ? v.toString() : str(v.toString());
        }
        if (v instanceof BigDecimal) {
            return ((BigDecimal) v).toPlainString();
        }
        if (v instanceof Number) { // Byte, Short, Integer, Long, BigInteger
            return v.toString();
        }
        return str(v.toString());
    }

    static void metadata(Connection conn) throws SQLException {
        List<String> tables = new ArrayList<>();
        try (ResultSet rs = conn.getMetaData().getTables(null, null, "%", null)) {
            while (rs.next()) {
                tables.add(str(rs.getString("TABLE_NAME")));
            }
        }
        List<String> catalogs = new ArrayList<>();
        try (ResultSet rs = conn.getMetaData().getCatalogs()) {
            while (rs.next()) {
                catalogs.add(str(rs.getString("TABLE_CAT")));
            }
        }
        System.out.println("{\"tables\":[" + String.join(",", tables) + "],\"catalogs\":["
                + String.join(",", catalogs) + "]}");
        System.out.flush();
    }

    // A JSON string literal (null for null). Only printable ASCII goes through unescaped.
    static String str(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (ch < 0x20 || ch > 0x7e) {
                        b.append(String.format("\\u%04x", (int) ch));
                    } else {
                        b.append(ch);
                    }
            }
        }
        return b.append('"').toString();
    }
}
