//! One frame of X's stream format on its way to Kafka: a post keyed by its id, a line that cannot be a post
//! to the rejects topic with why, an error line handed back to the caller. The live stream and the replay of
//! a file share it, so that both validate alike.

use contract::reject::Reject;

use super::framing::Frame;
use super::line::{Line, StreamError};
use crate::queue::{Closed, Emitter};

/// Queues `frame`; returns the entries of an error line (empty for anything else).
pub async fn produce(
    frame: Frame,
    topic: &str,
    max_line_bytes: usize,
    out: &Emitter,
) -> Result<Vec<StreamError>, Closed> {
    match frame {
        Frame::Heartbeat => out.heartbeat(),
        Frame::Overlong { length, prefix } => {
            out.line_read();
            let reason = Reject::LineTooLong { len: length, max: max_line_bytes, kept: prefix.len() };
            out.reject(prefix, &reason).await?;
        }
        Frame::Line(bytes) => {
            out.line_read();
            match Line::classify(&bytes) {
                Line::Post { id } => out.accept(topic, id, bytes).await?,
                Line::Invalid(reason) => out.reject(bytes, &reason).await?,
                Line::Errors(errors) => return Ok(errors),
            }
        }
    }
    Ok(Vec::new())
}
