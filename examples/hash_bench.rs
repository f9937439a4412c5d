//! Hashing benchmark for [`lanspread::content`]: how fast a library scan hashes a file.
//!
//! ```text
//! cargo run --release --example hash_bench -- [--size-mib N] [--repeat R]
//! ```
//!
//! Writes an N MiB (default 1024) file of pseudo-random bytes in `$TMPDIR` (or /tmp), reads
//! it once so the page cache is warm, then times, R times each (default 3, best shown):
//! `hash_file` as the scan calls it; the same read loop with other piece sizes (what chose
//! the piece size); and `b3sum` (multi-threaded by default) and `b3sum --num-threads 1` on
//! the same file, when `b3sum` is installed. `hash_file` uses one thread, so the single-
//! threaded `b3sum` is its like-for-like reference. The file is deleted at the end.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lanspread::content::{BlockHasher, ContentHash, FileHashes, hash_file};

fn main() -> Result<()> {
    let mut size_mib: u64 = 1024;
    let mut repeat = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().context("every option takes a value")?;
        match arg.as_str() {
            "--size-mib" => size_mib = value.parse()?,
            "--repeat" => repeat = value.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    let len = size_mib << 20;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("payload.bin");
    write_payload(&path, len)?;
    let file = File::open(&path)?;
    let mut sink = Vec::new();
    File::open(&path)?.read_to_end(&mut sink)?; // warm the page cache
    drop(sink);

    let gib = len as f64 / f64::from(1 << 30);
    let report = |what: &str, best: Duration| {
        println!(
            "{what:<34} {:>7.3} s  {:>6.2} GiB/s",
            best.as_secs_f64(),
            gib / best.as_secs_f64()
        );
    };
    println!("{size_mib} MiB file, page cache warm, best of {repeat}");

    let mut root = None;
    let best = best_of(repeat, || {
        let hashes = hash_file(&file, len, &mut |_| {}, &|| false)?;
        root = Some(hashes.root(len));
        Ok(())
    })?;
    report("hash_file (1 thread)", best);
    let root = root.context("hashed at least once")?;

    for piece in [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20] {
        let mut hashes = FileHashes::default();
        let best = best_of(repeat, || {
            hashes = hash_in_pieces(&file, len, piece)?;
            Ok(())
        })?;
        ensure!(hashes.root(len) == root, "piece size {piece} gave another root");
        report(&format!("read loop, {} KiB pieces", piece >> 10), best);
    }

    for threads in [None, Some(1)] {
        let mut command = Command::new("b3sum");
        if let Some(threads) = threads {
            command.args(["--num-threads", &threads.to_string()]);
        }
        command.arg(&path);
        let label = match threads {
            None => "b3sum (all threads)".to_owned(),
            Some(threads) => format!("b3sum --num-threads {threads}"),
        };
        let best = best_of(repeat, || {
            let output = command.output().context("b3sum not runnable (apt-get install b3sum)")?;
            ensure!(output.status.success(), "b3sum failed");
            Ok(())
        });
        match best {
            Ok(best) => report(&label, best),
            Err(err) => println!("{label}: {err:#}"),
        }
    }
    Ok(())
}

/// The loop of [`hash_file`] with a chosen piece size.
fn hash_in_pieces(file: &File, len: u64, piece: usize) -> Result<FileHashes> {
    let mut hasher = BlockHasher::new();
    let mut buffer = vec![0; piece];
    let mut offset = 0;
    while offset < len {
        let want = piece.min((len - offset) as usize);
        let read = file.read_at(&mut buffer[..want], offset)?;
        ensure!(read > 0, "short file");
        hasher.update(&buffer[..read]);
        offset += read as u64;
    }
    Ok(hasher.finish())
}

fn best_of(repeat: usize, mut run: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        run()?;
        best = best.min(start.elapsed());
    }
    Ok(best)
}

/// Pseudo-random (incompressible, no repeated blocks) bytes, written in 1 MiB pieces.
fn write_payload(path: &std::path::Path, len: u64) -> Result<()> {
    let mut out = std::io::BufWriter::new(File::create(path)?);
    let mut state = ContentHash::of(b"hash_bench seed");
    let mut piece = Vec::with_capacity(1 << 20);
    for _ in 0..len >> 20 {
        piece.clear();
        while piece.len() < 1 << 20 {
            state = ContentHash::of(state.as_bytes());
            piece.extend_from_slice(state.as_bytes());
        }
        out.write_all(&piece)?;
    }
    out.flush()?;
    Ok(())
}
