package walletstream.connect;

import com.datastax.oss.driver.api.core.AllNodesFailedException;
import com.datastax.oss.driver.api.core.CqlIdentifier;
import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.DriverException;
import com.datastax.oss.driver.api.core.DriverTimeoutException;
import com.datastax.oss.driver.api.core.config.DefaultDriverOption;
import com.datastax.oss.driver.api.core.config.DriverConfigLoader;
import com.datastax.oss.driver.api.core.connection.ClosedConnectionException;
import com.datastax.oss.driver.api.core.connection.HeartbeatException;
import com.datastax.oss.driver.api.core.cql.AsyncResultSet;
import com.datastax.oss.driver.api.core.cql.BoundStatement;
import com.datastax.oss.driver.api.core.cql.BoundStatementBuilder;
import com.datastax.oss.driver.api.core.cql.PreparedStatement;
import com.datastax.oss.driver.api.core.metadata.schema.ColumnMetadata;
import com.datastax.oss.driver.api.core.metadata.schema.TableMetadata;
import com.datastax.oss.driver.api.core.servererrors.OverloadedException;
import com.datastax.oss.driver.api.core.servererrors.QueryConsistencyException;
import com.datastax.oss.driver.api.core.servererrors.UnavailableException;
import com.datastax.oss.driver.api.core.type.DataType;
import com.datastax.oss.driver.api.core.type.codec.TypeCodec;
import com.datastax.oss.driver.api.core.type.codec.registry.CodecRegistry;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes each batch synchronously: put() returns only when every row of the
 * batch is written (or throws), so the offsets Connect commits afterwards
 * never run ahead of Cassandra. With cql.key.dedup=true (the default) only
 * the last record of each key is written within a batch (each record of a
 * compacted figure topic carries the whole figure); with false every record
 * is written, in order: the writes of a batch are sent concurrently, but
 * the driver stamps each with a client-side timestamp that grows in the
 * order they are sent, so of two records with the same primary key the later
 * one wins, as it would written one by one. When Cassandra
 * cannot be reached, put() throws RetriableException and Connect hands the
 * same batch again after cql.retry.backoff.ms; the session is (re)opened
 * lazily, so a task started while Cassandra is down waits instead of failing.
 */
public class CqlSinkTask extends SinkTask {
    private static final Logger log = LoggerFactory.getLogger(CqlSinkTask.class);

    private AbstractConfig config;
    private String keyspace;
    private String table;
    private long backoffMs;
    private boolean keyDedup;
    private CqlSession session;
    private Table target;

    /** The prepared statements of the target table. */
    private static final class Table {
        final List<ColumnMetadata> columns;
        final Map<String, DataType> types = new LinkedHashMap<>();
        final PreparedStatement insert;
        final PreparedStatement delete; // null when the key is not a single column
        final java.util.Set<CqlIdentifier> keys = new java.util.HashSet<>();

        Table(CqlSession s, TableMetadata md) {
            columns = new ArrayList<>(md.getColumns().values());
            StringBuilder names = new StringBuilder();
            StringBuilder marks = new StringBuilder();
            for (ColumnMetadata c : columns) {
                types.put(c.getName().asInternal(), c.getType());
                names.append(names.length() == 0 ? "" : ", ").append(c.getName().asCql(true));
                marks.append(marks.length() == 0 ? "?" : ", ?");
            }
            String qualified = md.getKeyspace().asCql(true) + "." + md.getName().asCql(true);
            insert = s.prepare("INSERT INTO " + qualified + " (" + names + ") VALUES (" + marks + ")");
            List<ColumnMetadata> key = md.getPrimaryKey();
            key.forEach(k -> keys.add(k.getName()));
            delete = key.size() == 1
                    ? s.prepare("DELETE FROM " + qualified + " WHERE " + key.get(0).getName().asCql(true) + " = ?")
                    : null;
        }
    }

    @Override
    public String version() {
        return CqlSinkConnector.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        config = new AbstractConfig(CqlSinkConnector.CONFIG, props);
        keyspace = config.getString(CqlSinkConnector.KEYSPACE);
        table = config.getString(CqlSinkConnector.TABLE);
        backoffMs = config.getLong(CqlSinkConnector.RETRY_BACKOFF_MS);
        keyDedup = config.getBoolean(CqlSinkConnector.KEY_DEDUP);
        log.info("{}.{}: {}", keyspace, table, keyDedup
                ? "writes the last record of each key of a batch (cql.key.dedup=true)"
                : "writes every record (cql.key.dedup=false)");
        try {
            connect();
        } catch (RetriableException e) {
            log.warn("{}.{}: Cassandra not reachable yet ({}); the first batch will retry", keyspace, table,
                    e.getMessage());
        }
    }

    private void connect() {
        if (session != null && target != null) {
            return;
        }
        try {
            if (session == null) {
                ClassLoader cl = CqlSinkTask.class.getClassLoader();
                DriverConfigLoader loader = DriverConfigLoader.programmaticBuilder(cl)
                        .withDuration(DefaultDriverOption.REQUEST_TIMEOUT,
                                Duration.ofMillis(config.getLong(CqlSinkConnector.REQUEST_TIMEOUT_MS)))
                        .withString(DefaultDriverOption.REQUEST_CONSISTENCY,
                                config.getString(CqlSinkConnector.CONSISTENCY))
                        .withDuration(DefaultDriverOption.RECONNECTION_BASE_DELAY, Duration.ofMillis(200))
                        .withDuration(DefaultDriverOption.RECONNECTION_MAX_DELAY, Duration.ofSeconds(2))
                        .withDuration(DefaultDriverOption.CONNECTION_INIT_QUERY_TIMEOUT, Duration.ofSeconds(5))
                        .withDuration(DefaultDriverOption.CONTROL_CONNECTION_TIMEOUT, Duration.ofSeconds(5))
                        .withBoolean(DefaultDriverOption.REQUEST_WARN_IF_SET_KEYSPACE, false)
                        .build();
                var builder = CqlSession.builder().withClassLoader(cl).withConfigLoader(loader)
                        .withLocalDatacenter(config.getString(CqlSinkConnector.LOCAL_DC));
                for (String hp : config.getList(CqlSinkConnector.CONTACT_POINTS)) {
                    int colon = hp.lastIndexOf(':');
                    String host = colon < 0 ? hp : hp.substring(0, colon);
                    int port = colon < 0 ? 9042 : Integer.parseInt(hp.substring(colon + 1));
                    builder.addContactPoint(new InetSocketAddress(host, port));
                }
                session = builder.build();
                log.info("{}.{}: connected to Cassandra", keyspace, table);
            }
            TableMetadata md = session.refreshSchema().getKeyspace(keyspace)
                    .flatMap(k -> k.getTable(table)).orElse(null);
            if (md == null) {
                throw new RetriableException("table " + keyspace + "." + table
                        + " does not exist (load deploy/cassandra/schema.cql)");
            }
            target = new Table(session, md);
        } catch (DriverException e) {
            if (retriable(e)) {
                closeSession();
                throw new RetriableException("Cassandra not reachable: " + e.getMessage(), e);
            }
            throw new ConnectException(keyspace + "." + table + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        if (records.isEmpty()) {
            return;
        }
        Collection<SinkRecord> toWrite = records;
        if (keyDedup) {
            // the last record of each key; records without a key all count
            Map<Object, SinkRecord> last = new LinkedHashMap<>();
            int i = 0;
            for (SinkRecord r : records) {
                Object k = r.key() != null ? r.key() : Integer.valueOf(i);
                last.remove(k); // keep the order of the last occurrences
                last.put(k, r);
                i++;
            }
            toWrite = last.values();
        }
        try {
            connect();
            List<CompletableFuture<AsyncResultSet>> writes = new ArrayList<>();
            for (SinkRecord r : toWrite) {
                BoundStatement st;
                try {
                    st = bind(r);
                } catch (DataException e) {
                    ErrantRecordReporter reporter = context.errantRecordReporter();
                    if (reporter == null) {
                        throw e;
                    }
                    reporter.report(r, e);
                    continue;
                }
                if (st != null) {
                    CompletionStage<AsyncResultSet> f = session.executeAsync(st);
                    writes.add(f.toCompletableFuture());
                }
            }
            CompletableFuture.allOf(writes.toArray(new CompletableFuture[0])).join();
        } catch (CompletionException e) {
            Throwable c = e.getCause();
            if (c instanceof DriverException && retriable((DriverException) c)) {
                throw retry("write failed (" + c.getMessage() + ")", c);
            }
            throw new ConnectException("write to " + keyspace + "." + table + " failed: " + c, c);
        } catch (RetriableException e) {
            throw retry(e.getMessage(), e.getCause());
        } catch (DriverException e) {
            if (retriable(e)) {
                throw retry(e.getMessage(), e);
            }
            throw new ConnectException(e.getMessage(), e);
        }
    }

    private RetriableException retry(String what, Throwable cause) {
        log.warn("{}.{}: {}; the batch will retry in {} ms", keyspace, table, what, backoffMs);
        context.timeout(backoffMs);
        return new RetriableException(what, cause);
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private BoundStatement bind(SinkRecord r) {
        String where = r.topic() + "/" + r.kafkaPartition() + "@" + r.kafkaOffset();
        CodecRegistry codecs = session.getContext().getCodecRegistry();
        if (r.value() == null) {
            if (target.delete == null || r.key() == null) {
                throw new DataException(where + ": a tombstone needs a record key and a one-column primary key");
            }
            ColumnMetadata k = target.columns.get(0); // the partition key comes first
            return target.delete.bind(CqlValues.convert(r.key(), k.getType(), codecs, where));
        }
        if (!(r.value() instanceof Map)) {
            throw new DataException(where + ": the value is not a JSON object");
        }
        Map<?, ?> fields = (Map<?, ?>) r.value();
        BoundStatementBuilder b = target.insert.boundStatementBuilder();
        for (int i = 0; i < target.columns.size(); i++) {
            ColumnMetadata c = target.columns.get(i);
            String name = c.getName().asInternal();
            Object v = CqlValues.fieldValue(fields, name, c.getType(), target.types, codecs, where);
            if (v == CqlValues.UNSET) {
                if (target.keys.contains(c.getName())) {
                    throw new DataException(where + ": the value has no field " + name + " (a key column)");
                }
                continue; // unset: the column keeps what it had
            }
            if (v == null && target.keys.contains(c.getName())) {
                throw new DataException(where + ": key column " + name + " is null");
            }
            b = b.set(i, v, (TypeCodec) codecs.codecFor(c.getType()));
        }
        return b.build();
    }

    private static boolean retriable(DriverException e) {
        return e instanceof AllNodesFailedException || e instanceof DriverTimeoutException
                || e instanceof ClosedConnectionException || e instanceof HeartbeatException
                || e instanceof UnavailableException || e instanceof QueryConsistencyException
                || e instanceof OverloadedException
                || e instanceof com.datastax.oss.driver.api.core.NoNodeAvailableException;
    }

    private void closeSession() {
        target = null;
        if (session != null) {
            try {
                session.close();
            } catch (RuntimeException e) {
                log.warn("closing the Cassandra session: {}", e.toString());
            }
            session = null;
        }
    }

    @Override
    public void stop() {
        closeSession();
    }
}
