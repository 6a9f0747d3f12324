//! Deterministic layer compression.
//!
//! gzip is compressed in parallel the way pigz does it, but with block
//! boundaries at fixed offsets of the input (never derived from the core
//! count): each block is raw deflate primed with the previous 32 KiB as its
//! dictionary and ended by a sync flush, so the concatenation is one valid
//! deflate stream and the bytes depend only on the input, the level and the
//! block size. zstd uses libzstd's multithreaded mode, whose output is the
//! same for any worker count of one or more.

use flate2::{Compress, Compression as Level, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;

/// How a layer is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// gzip at `level` (0-9).
    Gzip {
        /// deflate level.
        level: u32,
    },
    /// zstd at `level` (1-22).
    Zstd {
        /// zstd level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn layer_media_type(&self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip { .. } => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// A short stable name (`gzip-6`, `zstd-3`, `none`) for cache keys and logs.
    pub fn name(&self) -> String {
        match self {
            Compression::None => "none".into(),
            Compression::Gzip { level } => format!("gzip-{level}"),
            Compression::Zstd { level } => format!("zstd-{level}"),
        }
    }
}

/// Size of the input blocks gzip is cut into. Part of the output format:
/// changing it changes every digest.
pub const GZIP_BLOCK: usize = 1 << 20;
const DICT: usize = 32 * 1024;

/// A writer that compresses into `W` and must be finished with
/// [`Compressor::finish`].
pub enum Compressor<W: Write + Send> {
    /// Pass-through.
    None(W),
    /// Parallel gzip.
    Gzip(ParallelGzip<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write + Send> Compressor<W> {
    /// Starts compressing into `out` with up to `threads` workers.
    pub fn new(out: W, compression: Compression, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        Ok(match compression {
            Compression::None => Compressor::None(out),
            Compression::Gzip { level } => {
                Compressor::Gzip(ParallelGzip::new(out, level.min(9), threads)?)
            }
            Compression::Zstd { level } => {
                let mut enc = zstd::stream::write::Encoder::new(out, level)?;
                // Always the multithreaded mode, even with one worker: its
                // output is identical for every worker count >= 1, but
                // differs from the single-threaded mode's (0 workers).
                enc.multithread(threads as u32)?;
                enc.include_checksum(true)?;
                Compressor::Zstd(enc)
            }
        })
    }

    /// Flushes everything and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write + Send> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(_) => Ok(()),
            Compressor::Zstd(z) => z.flush(),
        }
    }
}

type BlockResult = io::Result<Vec<u8>>;

/// Parallel, deterministic gzip (see the module comment).
pub struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    buf: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    pending: VecDeque<mpsc::Receiver<BlockResult>>,
}

impl<W: Write> ParallelGzip<W> {
    fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        // Fixed header: no name, mtime 0, "unknown" OS, so it never varies.
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff])?;
        Ok(ParallelGzip {
            out,
            level,
            threads,
            buf: Vec::with_capacity(GZIP_BLOCK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            pending: VecDeque::new(),
        })
    }

    fn dispatch(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(GZIP_BLOCK));
        let dict = std::mem::take(&mut self.dict);
        self.dict = block[block.len().saturating_sub(DICT)..].to_vec();
        let level = self.level;
        let (tx, rx) = mpsc::sync_channel(1);
        if self.threads == 1 {
            let _ = tx.send(deflate_block(&block, &dict, level));
        } else {
            std::thread::spawn(move || {
                let _ = tx.send(deflate_block(&block, &dict, level));
            });
        }
        self.pending.push_back(rx);
        // Bound the work in flight: memory stays at a few blocks per worker
        // whatever the layer size.
        while self.pending.len() > self.threads * 2 {
            self.drain_one()?;
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let data = rx
                .recv()
                .map_err(|_| io::Error::other("gzip worker stopped"))??;
            self.out.write_all(&data)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        // A final empty fixed-Huffman block with BFINAL set ends the
        // stream; every block before it ended byte-aligned by a sync flush.
        self.out.write_all(&[0x03, 0x00])?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.total as u32).to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(GZIP_BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        self.total += n as u64;
        if self.buf.len() == GZIP_BLOCK {
            self.dispatch()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn deflate_block(input: &[u8], dict: &[u8], level: u32) -> BlockResult {
    let mut c = Compress::new(Level::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
        let status = c
            .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        let done = c.total_in() as usize == input.len();
        // A sync flush is complete once all input is taken and the
        // compressor left spare room in the output.
        if done && out.len() < out.capacity() {
            break;
        }
        if let Status::StreamEnd = status {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(n: usize) -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                if i % 7 < 4 {
                    b"netshoot"[i % 8]
                } else {
                    (x >> 16) as u8
                }
            })
            .collect()
    }

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut c = Compressor::new(Vec::new(), Compression::Gzip { level: 6 }, threads).unwrap();
        for chunk in data.chunks(7777) {
            c.write_all(chunk).unwrap();
        }
        c.finish().unwrap()
    }

    #[test]
    fn gzip_is_valid_and_independent_of_threads() {
        for n in [0, 1, GZIP_BLOCK - 1, GZIP_BLOCK, 3 * GZIP_BLOCK + 17] {
            let data = sample(n);
            let one = gz(&data, 1);
            let four = gz(&data, 4);
            assert_eq!(one, four, "size {n}");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "size {n}");
        }
    }

    #[test]
    fn zstd_is_independent_of_threads() {
        let data = sample(5 * GZIP_BLOCK);
        let z = |t| {
            let mut c = Compressor::new(Vec::new(), Compression::Zstd { level: 3 }, t).unwrap();
            c.write_all(&data).unwrap();
            c.finish().unwrap()
        };
        let a = z(1);
        assert_eq!(a, z(2));
        assert_eq!(zstd::decode_all(&a[..]).unwrap(), data);
    }
}
