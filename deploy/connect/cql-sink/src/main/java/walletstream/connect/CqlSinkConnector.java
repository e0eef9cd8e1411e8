package walletstream.connect;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

/**
 * Upserts each record of its topics into one Cassandra table: the fields of
 * the record value (a JSON object, read by {@link ExactJsonConverter}) are
 * bound to the table's columns of the same names, converted to the columns'
 * CQL types without ever going through floating point. A null value (a
 * tombstone) deletes the row of the record key. With cql.key.dedup=true (the
 * default) only the last record of each key in a batch is written; false
 * writes every record (an event topic such as T.applied). See
 * docs/CASSANDRA.md.
 */
public class CqlSinkConnector extends SinkConnector {
    public static final String VERSION = "1.0.0";

    static final String CONTACT_POINTS = "cql.contact.points";
    static final String LOCAL_DC = "cql.local.datacenter";
    static final String KEYSPACE = "cql.keyspace";
    static final String TABLE = "cql.table";
    static final String CONSISTENCY = "cql.consistency";
    static final String REQUEST_TIMEOUT_MS = "cql.request.timeout.ms";
    static final String RETRY_BACKOFF_MS = "cql.retry.backoff.ms";
    static final String KEY_DEDUP = "cql.key.dedup";

    static final ConfigDef CONFIG = new ConfigDef()
            .define(CONTACT_POINTS, Type.LIST, "127.0.0.1:9042", Importance.HIGH,
                    "Cassandra nodes to connect to, host:port, comma-separated.")
            .define(LOCAL_DC, Type.STRING, "datacenter1", Importance.HIGH,
                    "The local datacenter of the driver's load balancing policy.")
            .define(KEYSPACE, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, Importance.HIGH,
                    "Keyspace of the table.")
            .define(TABLE, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, Importance.HIGH,
                    "Table the records are upserted into (its columns are matched to the value's fields by name).")
            .define(CONSISTENCY, Type.STRING, "LOCAL_QUORUM", Importance.MEDIUM,
                    "Consistency level of the writes.")
            .define(REQUEST_TIMEOUT_MS, Type.LONG, 10_000L, Importance.LOW,
                    "Timeout of one write, in milliseconds.")
            .define(RETRY_BACKOFF_MS, Type.LONG, 1_000L, Importance.LOW,
                    "Wait before the batch is retried when Cassandra cannot be reached, in milliseconds.")
            .define(KEY_DEDUP, Type.BOOLEAN, true, Importance.MEDIUM,
                    "true: within a batch only the last record of each record key is written (right for "
                    + "compacted topics whose every record carries the key's whole row, e.g. a wallet's "
                    + "balance). false: every record is written, in order (a topic of events, e.g. "
                    + "T.applied, where records of one key are different rows; a repeated record is an "
                    + "upsert of the same primary key).");

    private Map<String, String> props;

    @Override
    public void start(Map<String, String> props) {
        CONFIG.parse(props); // fail early on a bad configuration
        this.props = new HashMap<>(props);
    }

    @Override
    public Class<? extends Task> taskClass() {
        return CqlSinkTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        List<Map<String, String>> out = new ArrayList<>();
        for (int i = 0; i < maxTasks; i++) {
            out.add(props);
        }
        return out;
    }

    @Override
    public void stop() {
    }

    @Override
    public ConfigDef config() {
        return CONFIG;
    }

    @Override
    public String version() {
        return VERSION;
    }
}
