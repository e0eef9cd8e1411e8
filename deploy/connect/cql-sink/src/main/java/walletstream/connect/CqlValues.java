package walletstream.connect;

import com.datastax.oss.driver.api.core.data.UdtValue;
import com.datastax.oss.driver.api.core.type.DataType;
import com.datastax.oss.driver.api.core.type.DataTypes;
import com.datastax.oss.driver.api.core.type.ListType;
import com.datastax.oss.driver.api.core.type.SetType;
import com.datastax.oss.driver.api.core.type.UserDefinedType;
import com.datastax.oss.driver.api.core.type.codec.TypeCodec;
import com.datastax.oss.driver.api.core.type.codec.registry.CodecRegistry;
import com.datastax.oss.driver.api.core.CqlIdentifier;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Instant;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.connect.errors.DataException;

/**
 * JSON values (as read by {@link ExactJsonConverter}) to the Java values of
 * CQL types. Numbers arrive as BigDecimal, Integer, Long or BigInteger and
 * stay exact: a decimal column gets the BigDecimal as written (its scale
 * too), an integer column only a value that fits, and a Double or Float is
 * refused rather than rounded.
 *
 * <p>CQL timestamps hold milliseconds; walletstream's instants hold
 * nanoseconds. A column (or UDT field) named {@code X_nanos} of type int,
 * beside a timestamp column {@code X}, receives the nano-of-second of X's
 * instant when the record does not carry {@code X_nanos} itself, so the
 * exact instant is X (truncated to the millisecond) plus the sub-millisecond
 * part of X_nanos.
 */
final class CqlValues {
    static final String NANOS_SUFFIX = "_nanos";

    private CqlValues() {
    }

    /** Marker for "leave this column unset" (the record has no such field). */
    static final Object UNSET = new Object();

    /**
     * The value of column/field {@code name} of type {@code type} taken from
     * {@code fields}; {@code siblings} maps the other names to their types.
     */
    static Object fieldValue(Map<?, ?> fields, String name, DataType type,
                             Map<String, DataType> siblings, CodecRegistry codecs, String where) {
        if (fields.containsKey(name)) {
            return convert(fields.get(name), type, codecs, where + "." + name);
        }
        if (name.endsWith(NANOS_SUFFIX) && type.equals(DataTypes.INT)) {
            String base = name.substring(0, name.length() - NANOS_SUFFIX.length());
            if (DataTypes.TIMESTAMP.equals(siblings.get(base)) && fields.get(base) != null) {
                return instant(fields.get(base), where + "." + base).getNano();
            }
        }
        return UNSET;
    }

    static Object convert(Object v, DataType type, CodecRegistry codecs, String where) {
        if (v == null) {
            return null;
        }
        if (v instanceof Double || v instanceof Float) {
            throw new DataException(where + ": a floating-point number (" + v + ") would not be exact; "
                    + "use the ExactJsonConverter");
        }
        try {
            if (type.equals(DataTypes.TEXT) || type.equals(DataTypes.ASCII)) {
                return string(v, where);
            }
            if (type.equals(DataTypes.DECIMAL)) {
                if (v instanceof BigDecimal) {
                    return v;
                }
                if (v instanceof Integer || v instanceof Long) {
                    return BigDecimal.valueOf(((Number) v).longValue());
                }
                if (v instanceof BigInteger) {
                    return new BigDecimal((BigInteger) v);
                }
                return new BigDecimal(string(v, where));
            }
            if (type.equals(DataTypes.BIGINT)) {
                return integer(v, where).longValueExact();
            }
            if (type.equals(DataTypes.INT)) {
                return integer(v, where).intValueExact();
            }
            if (type.equals(DataTypes.VARINT)) {
                return integer(v, where).toBigIntegerExact();
            }
            if (type.equals(DataTypes.BOOLEAN)) {
                if (v instanceof Boolean) {
                    return v;
                }
                throw new DataException(where + ": expected true or false, got " + v);
            }
            if (type.equals(DataTypes.DATE)) {
                return LocalDate.parse(string(v, where));
            }
            if (type.equals(DataTypes.TIMESTAMP)) {
                return instant(v, where);
            }
            if (type instanceof ListType) {
                DataType elem = ((ListType) type).getElementType();
                List<Object> out = new ArrayList<>();
                int i = 0;
                for (Object e : list(v, where)) {
                    out.add(convert(e, elem, codecs, where + "[" + i++ + "]"));
                }
                return out;
            }
            if (type instanceof SetType) {
                DataType elem = ((SetType) type).getElementType();
                Set<Object> out = new LinkedHashSet<>();
                int i = 0;
                for (Object e : list(v, where)) {
                    out.add(convert(e, elem, codecs, where + "[" + i++ + "]"));
                }
                return out;
            }
            if (type instanceof UserDefinedType) {
                return udt(v, (UserDefinedType) type, codecs, where);
            }
        } catch (ArithmeticException | NumberFormatException | DateTimeParseException e) {
            throw new DataException(where + ": " + v + " does not fit CQL type " + type.asCql(false, true)
                    + " exactly (" + e.getMessage() + ")", e);
        }
        throw new DataException(where + ": CQL type " + type.asCql(false, true) + " is not supported");
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static UdtValue udt(Object v, UserDefinedType type, CodecRegistry codecs, String where) {
        if (!(v instanceof Map)) {
            throw new DataException(where + ": expected a JSON object for " + type.asCql(false, true));
        }
        Map<?, ?> fields = (Map<?, ?>) v;
        Map<String, DataType> types = new java.util.HashMap<>();
        List<CqlIdentifier> names = type.getFieldNames();
        for (int i = 0; i < names.size(); i++) {
            types.put(names.get(i).asInternal(), type.getFieldTypes().get(i));
        }
        UdtValue out = type.newValue();
        for (int i = 0; i < names.size(); i++) {
            DataType ft = type.getFieldTypes().get(i);
            Object fv = fieldValue(fields, names.get(i).asInternal(), ft, types, codecs, where);
            if (fv != UNSET) {
                out = out.set(i, fv, (TypeCodec) codecs.codecFor(ft));
            }
        }
        return out;
    }

    private static String string(Object v, String where) {
        if (v instanceof String) {
            return (String) v;
        }
        throw new DataException(where + ": expected a string, got " + v);
    }

    private static BigDecimal integer(Object v, String where) {
        if (v instanceof Integer || v instanceof Long) {
            return BigDecimal.valueOf(((Number) v).longValue());
        }
        if (v instanceof BigInteger) {
            return new BigDecimal((BigInteger) v);
        }
        if (v instanceof BigDecimal) {
            return (BigDecimal) v; // exactness is checked by the *ValueExact call
        }
        throw new DataException(where + ": expected an integer, got " + v);
    }

    private static List<?> list(Object v, String where) {
        if (v instanceof List) {
            return (List<?>) v;
        }
        throw new DataException(where + ": expected a JSON array, got " + v);
    }

    private static Instant instant(Object v, String where) {
        if (v instanceof String) {
            return OffsetDateTime.parse((String) v).toInstant();
        }
        if (v instanceof Integer || v instanceof Long) {
            return Instant.ofEpochMilli(((Number) v).longValue());
        }
        throw new DataException(where + ": expected an RFC 3339 timestamp, got " + v);
    }
}
