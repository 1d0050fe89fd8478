//! TensorBoard scalar logs, written directly: an event file is a TFRecord stream of
//! `Event` protocol buffers. Each record is framed as
//!   u64 length · u32 masked CRC-32C(length) · data · u32 masked CRC-32C(data)   (little-endian)
//! and the messages used here are
//!   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//!             SessionLog session_log = 7; }
//!   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
//!   SessionLog { SessionStatus status = 1; }   (START = 1)
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

pub struct EventWriter {
    file: BufWriter<File>,
}

impl EventWriter {
    /// A new event file in `folder` (TensorBoard reads every `events.out.tfevents.*` in it).
    pub fn create(folder: &Path) -> Result<Self> {
        let now = wall_time();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let name = format!("events.out.tfevents.{}.{}.{}", now as u64, host.trim(), std::process::id());
        let path = folder.join(name);
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = Self { file: BufWriter::new(file) };
        let mut event = Vec::new();
        put_double(&mut event, 1, now);
        put_bytes(&mut event, 3, b"brain.Event:2");
        writer.write_record(&event)?;
        writer.flush()?;
        Ok(writer)
    }

    /// Marks a resumed run's restart at `step`: readers drop what earlier files logged at
    /// `step` or later (epochs logged after the checkpoint a crash went back to), as
    /// PyTorch's `SummaryWriter(purge_step=…)` does with the same event.
    pub fn purge_from(&mut self, step: i64) -> Result<()> {
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        event.push(2 << 3); // field 2, varint
        put_varint(&mut event, step as u64);
        put_bytes(&mut event, 7, &[1 << 3, 1]); // session_log { status: START }
        self.write_record(&event)?;
        self.flush()
    }

    /// Logs `value` as scalar `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        let mut summary_value = Vec::new();
        put_bytes(&mut summary_value, 1, tag.as_bytes());
        summary_value.push(2 << 3 | 5); // field 2, 32-bit
        summary_value.extend_from_slice(&(value as f32).to_le_bytes());
        let mut summary = Vec::new();
        put_bytes(&mut summary, 1, &summary_value);
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        event.push(2 << 3); // field 2, varint
        put_varint(&mut event, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.write_record(&event)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().context("cannot write the TensorBoard event file")
    }

    fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let length = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&length);
        record.extend_from_slice(&masked_crc(&length).to_le_bytes());
        record.extend_from_slice(data);
        record.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&record).context("cannot write the TensorBoard event file")
    }
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// TFRecord's CRC: CRC-32C rotated right by 15 bits plus a constant.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_double(out: &mut Vec<u8>, field: u8, v: f64) {
    out.push(field << 3 | 1); // 64-bit
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | 2); // length-delimited
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}
