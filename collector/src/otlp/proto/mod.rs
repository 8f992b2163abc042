//! OpenTelemetry's OTLP messages for logs and metrics, as `prost-build`
//! generated them for the `opentelemetry-proto` crate (0.33.1, Apache-2.0).
//!
//! Vendored rather than depended on: that crate's message feature pulls
//! `opentelemetry` and `opentelemetry_sdk` with it, and the receiver needs the
//! messages only. The generated files are unchanged except that
//! `scripts/vendor-otlp-proto` (the transformation, to redo on an update)
//! drops the gRPC client and server modules and the serialize half of the
//! serde attributes, and turns `cfg_attr(feature = "with-serde", ...)` into
//! `cfg_attr(all(), ...)` (always on): the receiver decodes OTLP/JSON with
//! the same types, per the OTLP JSON mapping (lowerCamelCase names, 64-bit
//! integers as strings or numbers, trace and span ids as hex, enums as
//! integers, unknown fields ignored).
#![allow(clippy::all, missing_docs, rustdoc::all, dead_code)]

pub(crate) mod common {
    pub(crate) mod v1 {
        include!("opentelemetry.proto.common.v1.rs");
    }
}
pub(crate) mod resource {
    pub(crate) mod v1 {
        include!("opentelemetry.proto.resource.v1.rs");
    }
}
pub(crate) mod logs {
    pub(crate) mod v1 {
        include!("opentelemetry.proto.logs.v1.rs");
    }
}
pub(crate) mod metrics {
    pub(crate) mod v1 {
        include!("opentelemetry.proto.metrics.v1.rs");
    }
}
pub(crate) mod collector {
    pub(crate) mod logs {
        pub(crate) mod v1 {
            include!("opentelemetry.proto.collector.logs.v1.rs");
        }
    }
    pub(crate) mod metrics {
        pub(crate) mod v1 {
            include!("opentelemetry.proto.collector.metrics.v1.rs");
        }
    }
}

/// The OTLP JSON mapping's special cases, deserialize side only (after the
/// `serializers` module of `opentelemetry-proto`).
pub(crate) mod serializers {
    use super::common::v1::any_value::Value;
    use super::common::v1::{ArrayValue, KeyValueList};
    use serde::de::{self, Deserializer, MapAccess, Visitor};
    use serde::Deserialize;
    use std::fmt;

    /// A 64-bit integer as JSON writes it: a number, or (the mapping's
    /// form) a decimal string.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Integer {
        Unsigned(u64),
        Signed(i64),
        Text(String),
    }

    impl Integer {
        fn signed<E: de::Error>(self) -> Result<i64, E> {
            match self {
                Integer::Unsigned(value) => i64::try_from(value).map_err(E::custom),
                Integer::Signed(value) => Ok(value),
                Integer::Text(text) => text.trim().parse().map_err(E::custom),
            }
        }

        fn unsigned<E: de::Error>(self) -> Result<u64, E> {
            match self {
                Integer::Unsigned(value) => Ok(value),
                Integer::Signed(value) => u64::try_from(value).map_err(E::custom),
                Integer::Text(text) => text.trim().parse().map_err(E::custom),
            }
        }
    }

    pub fn deserialize_string_to_u64<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<u64, D::Error> {
        Integer::deserialize(deserializer)?.unsigned()
    }

    pub fn deserialize_string_to_i64<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<i64, D::Error> {
        Integer::deserialize(deserializer)?.signed()
    }

    pub fn deserialize_vec_string_to_vec_u64<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u64>, D::Error> {
        Vec::<Integer>::deserialize(deserializer)?
            .into_iter()
            .map(Integer::unsigned)
            .collect()
    }

    /// A double, or one of the strings the mapping uses for the values JSON
    /// numbers cannot hold.
    pub fn deserialize_f64_special<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Double {
            Number(f64),
            Text(String),
        }
        match Double::deserialize(deserializer)? {
            Double::Number(value) => Ok(value),
            Double::Text(text) => match text.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => other.parse().map_err(de::Error::custom),
            },
        }
    }

    /// Trace and span ids: hex in JSON, bytes in protobuf.
    pub fn deserialize_from_hex_string<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() % 2 != 0 {
            return Err(de::Error::custom("an id of odd hex length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|at| {
                text.get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| de::Error::custom("an id that is not hex"))
            })
            .collect()
    }

    /// `AnyValue`: an object with one of `stringValue`, `boolValue`,
    /// `intValue` (a string or a number), `doubleValue`, `arrayValue`,
    /// `kvlistValue`, `bytesValue` (base64). An empty object is an empty
    /// value; unknown keys are skipped.
    pub fn deserialize_from_value<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Value>, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Option<Value>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a JSON object for AnyValue")
            }

            fn visit_map<V: MapAccess<'de>>(self, mut map: V) -> Result<Option<Value>, V::Error> {
                let mut value = None;
                while let Some(key) = map.next_key::<String>()? {
                    value = match key.as_str() {
                        "stringValue" => {
                            map.next_value::<Option<String>>()?.map(Value::StringValue)
                        }
                        "boolValue" => map.next_value::<Option<bool>>()?.map(Value::BoolValue),
                        "intValue" => match map.next_value::<Option<Integer>>()? {
                            Some(integer) => Some(Value::IntValue(integer.signed()?)),
                            None => None,
                        },
                        "doubleValue" => map.next_value::<Option<f64>>()?.map(Value::DoubleValue),
                        "arrayValue" => map
                            .next_value::<Option<ArrayValue>>()?
                            .map(Value::ArrayValue),
                        "kvlistValue" => map
                            .next_value::<Option<KeyValueList>>()?
                            .map(Value::KvlistValue),
                        "bytesValue" => match map.next_value::<Option<String>>()? {
                            Some(text) => {
                                use base64::Engine;
                                let bytes = base64::engine::general_purpose::STANDARD
                                    .decode(text.as_bytes())
                                    .map_err(de::Error::custom)?;
                                Some(Value::BytesValue(bytes))
                            }
                            None => None,
                        },
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            continue;
                        }
                    };
                }
                Ok(value)
            }
        }

        deserializer.deserialize_map(ValueVisitor)
    }
}
