//! Hands a record to librdkafka without copying its key and value: at stream rate the copy (an allocation
//! and a memcpy of the whole payload, freed again on another thread) cost more than the rest of the hand-off.
//! rdkafka's `send` always copies (`RD_KAFKA_MSG_F_COPY`), hence this call of `rd_kafka_producev` of our own;
//! the delivery report still comes through the producer's context, tagged as `send`'s would be.

use std::ffi::{CStr, c_char, c_int, c_void};

use rdkafka::bindings as rdsys;
use rdkafka::bindings::rd_kafka_vtype_t::*;
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafka, RDKafkaRespErr};

use crate::record::Record;

/// Produces `record` to `topic`, its delivery report tagged `tag`.
///
/// # Safety
/// `producer` is a live producer whose context takes `usize` delivery opaques, and the bytes of
/// `record.key` and `record.payload` stay where they are, unchanged, until librdkafka emitted the delivery
/// report of this message (or the producer was destroyed): librdkafka reads them until then.
pub(super) unsafe fn produce(
    producer: *mut RDKafka,
    topic: &CStr,
    record: &Record,
    tag: usize,
) -> Result<(), KafkaError> {
    // SAFETY: a new list, owned here until `rd_kafka_producev` takes it; every name and value is passed with
    // its length, and librdkafka copies both.
    let headers = unsafe { rdsys::rd_kafka_headers_new(record.header_count()) };
    for (name, value) in record.headers() {
        unsafe {
            rdsys::rd_kafka_header_add(
                headers,
                name.as_ptr().cast::<c_char>(),
                name.len() as isize,
                value.as_ptr().cast::<c_void>(),
                value.len() as isize,
            );
        }
    }
    let (key, key_len) = match &record.key {
        Some(key) => (key.as_ptr().cast_mut().cast::<c_void>(), key.len()),
        None => (std::ptr::null_mut(), 0),
    };
    // SAFETY: the argument list is the one rdkafka's own `BaseProducer::send` passes, with message flags 0
    // instead of RD_KAFKA_MSG_F_COPY (the caller keeps the bytes in place, as the contract above says).
    let error = unsafe {
        rdsys::rd_kafka_producev(
            producer,
            RD_KAFKA_VTYPE_TOPIC,
            topic.as_ptr(),
            RD_KAFKA_VTYPE_MSGFLAGS,
            0 as c_int,
            RD_KAFKA_VTYPE_VALUE,
            record.payload.as_ptr().cast_mut().cast::<c_void>(),
            record.payload.len(),
            RD_KAFKA_VTYPE_KEY,
            key,
            key_len,
            RD_KAFKA_VTYPE_OPAQUE,
            tag as *mut c_void,
            RD_KAFKA_VTYPE_HEADERS,
            headers,
            RD_KAFKA_VTYPE_END,
        )
    };
    if error == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        // The message owns the headers now.
        return Ok(());
    }
    // SAFETY: refused, so the headers are still ours.
    unsafe { rdsys::rd_kafka_headers_destroy(headers) };
    Err(KafkaError::MessageProduction(error.into()))
}
