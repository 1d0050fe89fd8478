//! IDX files (the MNIST family's format), gzipped or not.
//!
//! Layout: two zero bytes, a type byte (0x08 = unsigned byte, the only type these data sets
//! use), the number of dimensions, each dimension as a big-endian u32, then the data.
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use flate2::read::GzDecoder;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UNSIGNED_BYTE: u8 = 0x08;

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes, decompressing it when it is gzipped.
///
/// The data is read as it arrives: a header that claims more than the file holds is an
/// error naming the file, never an allocation of the claimed size.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let mut file = File::open(path).with_context(|| format!("cannot open IDX file {}", path.display()))?;
    let mut magic = Vec::with_capacity(2);
    (&mut file).take(2).read_to_end(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    let reader = BufReader::new(file);
    let mut stream: Box<dyn Read> =
        if magic == GZIP_MAGIC { Box::new(GzDecoder::new(reader)) } else { Box::new(reader) };
    parse_idx(&mut stream).with_context(|| format!("invalid IDX file {}", path.display()))
}

/// Parses an uncompressed IDX stream.
pub fn parse_idx(stream: &mut dyn Read) -> Result<IdxArray> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).context("truncated before the end of its 4-byte header")?;
    ensure!(
        header[0] == 0 && header[1] == 0,
        "bad magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file",
        header[0],
        header[1],
        header[2],
        header[3]
    );
    ensure!(
        header[2] == UNSIGNED_BYTE,
        "element type 0x{:02x} is not supported (only 0x08, unsigned bytes)",
        header[2]
    );
    let ndims = header[3] as usize;
    ensure!(ndims > 0, "the header declares zero dimensions");
    let mut dims = Vec::with_capacity(ndims);
    for i in 0..ndims {
        let mut dim = [0u8; 4];
        stream.read_exact(&mut dim).with_context(|| format!("truncated in the size of dimension {i}"))?;
        dims.push(u32::from_be_bytes(dim) as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .with_context(|| format!("dimensions {dims:?} overflow"))?;
    let mut data = Vec::new();
    stream
        .take(expected as u64 + 1)
        .read_to_end(&mut data)
        .context("cannot read the data (corrupt compressed stream?)")?;
    if data.len() < expected {
        bail!("truncated: dimensions {dims:?} need {expected} bytes of data, the file has {}", data.len());
    }
    if data.len() > expected {
        bail!("data continues past the {expected} bytes that dimensions {dims:?} declare");
    }
    Ok(IdxArray { dims, data })
}
