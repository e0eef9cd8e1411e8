package walletstream.connect;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.util.Map;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.storage.Converter;

/**
 * Schemaless JSON that keeps numbers exact.
 *
 * <p>Kafka's own JsonConverter with {@code schemas.enable=false} turns every
 * JSON number with a fraction into a {@code Double} and every integer into a
 * {@code long} (1000000000000604.180000000000000002 becomes
 * 1.0000000000006041E15; 100000000000000000000 wraps to 7766279631452241920).
 * This converter gives the same shapes (Map, List, String, Boolean, null) but
 * numbers as {@code BigDecimal} with the scale they were written with
 * (75.00 stays 75.00) and integers as Integer, Long or BigInteger by size.
 * Kafka's single message transforms work on these schemaless maps as usual.
 */
public class ExactJsonConverter implements Converter {
    private static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(com.fasterxml.jackson.core.JsonGenerator.Feature.WRITE_BIGDECIMAL_AS_PLAIN)
            .build();

    @Override
    public void configure(Map<String, ?> configs, boolean isKey) {
        // no options
    }

    @Override
    public SchemaAndValue toConnectData(String topic, byte[] value) {
        if (value == null) {
            return SchemaAndValue.NULL; // a tombstone
        }
        try {
            return new SchemaAndValue(null, MAPPER.readValue(value, Object.class));
        } catch (IOException e) {
            throw new DataException("record of topic " + topic + " is not JSON: " + e.getMessage(), e);
        }
    }

    @Override
    public byte[] fromConnectData(String topic, Schema schema, Object value) {
        if (value == null) {
            return null;
        }
        try {
            return MAPPER.writeValueAsBytes(value);
        } catch (IOException e) {
            throw new DataException("cannot write a value of topic " + topic + " as JSON: " + e.getMessage(), e);
        }
    }
}
