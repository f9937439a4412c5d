//! Hashing benchmark for [`lanspread::content`]: how fast a library scan hashes a file,
//! and a whole game folder.
//!
//! ```text
//! cargo run --release --example hash_bench -- [--size-mib N] [--repeat R] [--game-mib G] [--files F]
//! ```
//!
//! Writes an N MiB (default 1024) file of pseudo-random bytes in `$TMPDIR` (or /tmp), reads
//! it once so the page cache is warm, then times, R times each (default 3, best shown):
//! `hash_file` as the scan calls it; the same read loop with other piece sizes (what chose
//! the piece size); and `b3sum` (multi-threaded by default) and `b3sum --num-threads 1` on
//! the same file, when `b3sum` is installed. `hash_file` uses one thread, so the single-
//! threaded `b3sum` is its like-for-like reference.
//!
//! Then the game folder (issue 12, benchmark (e)): a catalog game of F files (default 8)
//! totalling G MiB (default 1024; 0 skips it), hashed as a first start of the runtime
//! does: a scan with a fresh index and state dir that defers hashing, then each game's
//! hash task (one thread; block hashes recorded in the state dir). Against `b3sum` on the
//! same files, with its default threads and with `--num-threads 1`, and the ratio to each
//! (goal: at least 0.8 of `b3sum --num-threads 1`, the fair reference since the runtime
//! hashes on one thread). Everything is deleted at the end.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lanspread::catalog::Catalog;
use lanspread::content::{BlockHasher, ContentHash, FileHashes, hash_file};
use lanspread::library::{Hashing, LibraryIndex, scan_local_library};

fn main() -> Result<()> {
    let mut size_mib: u64 = 1024;
    let mut repeat = 3;
    let mut game_mib: u64 = 1024;
    let mut files: u64 = 8;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().context("every option takes a value")?;
        match arg.as_str() {
            "--size-mib" => size_mib = value.parse()?,
            "--repeat" => repeat = value.parse()?,
            "--game-mib" => game_mib = value.parse()?,
            "--files" => files = value.parse()?,
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

    for (label, best) in b3sum(repeat, &[path.as_path()]) {
        match best {
            Ok(best) => report(&label, best),
            Err(err) => println!("{label}: {err:#}"),
        }
    }
    drop(file);
    std::fs::remove_file(&path)?;

    if game_mib > 0 {
        game_folder(repeat, game_mib, files.max(1))?;
    }
    Ok(())
}

/// `b3sum` over `paths`, with its default threads and with one, best of `repeat` each.
fn b3sum(repeat: usize, paths: &[&std::path::Path]) -> Vec<(String, Result<Duration>)> {
    [None, Some(1)]
        .into_iter()
        .map(|threads| {
            let mut command = Command::new("b3sum");
            if let Some(threads) = threads {
                command.args(["--num-threads", &threads.to_string()]);
            }
            command.args(paths);
            let label = match threads {
                None => "b3sum (all threads)".to_owned(),
                Some(threads) => format!("b3sum --num-threads {threads}"),
            };
            let best = best_of(repeat, || {
                let output = command.output().context("b3sum not runnable (apt-get install b3sum)")?;
                ensure!(output.status.success(), "b3sum failed");
                Ok(())
            });
            (label, best)
        })
        .collect()
}

/// A first start's hashing of one game folder of `files` files, `game_mib` MiB in all.
fn game_folder(repeat: usize, game_mib: u64, files: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let games = dir.path().join("games");
    let root = games.join("openarena");
    std::fs::create_dir_all(root.join("maps"))?;
    std::fs::write(root.join("version.ini"), "1")?;
    let mut paths = Vec::new();
    let total = game_mib << 20;
    for index in 0..files {
        // Unequal sizes, as in a real game: a few large archives and smaller files.
        let share = total / files;
        let len = if index == 0 { total - share * (files - 1) } else { share };
        let path = if index % 2 == 0 {
            root.join(format!("data{index}.pak"))
        } else {
            root.join(format!("maps/map{index}.bsp"))
        };
        write_payload_seeded(&path, len, index)?;
        let mut sink = Vec::new();
        File::open(&path)?.read_to_end(&mut sink)?; // warm the page cache
        paths.push(path);
    }
    let gib = total as f64 / f64::from(1 << 30);
    println!();
    println!("game folder: {files} files, {game_mib} MiB, page cache warm, best of {repeat}");
    let catalog = Catalog::bundled();
    let mut hashed = 0;
    let best = best_of(repeat, || {
        // A fresh state dir each time: a first start, nothing known.
        let state = tempfile::tempdir()?;
        let mut index = LibraryIndex::load_for(state.path(), &games);
        let mut tasks = Vec::new();
        scan_local_library(&games, &catalog, &mut index, &mut Hashing::Defer(&mut tasks))?;
        ensure!(tasks.len() == 1, "the scan found {} games to hash", tasks.len());
        hashed = 0;
        for task in tasks {
            let done = task.run(&mut |_| {}, &|| false)?;
            hashed += done.hashed_bytes();
            ensure!(index.insert_hashed(done), "the hashes fit the scan");
        }
        Ok(())
    })?;
    ensure!(hashed >= total, "hashed {hashed} of {total} bytes");
    let ours = gib / best.as_secs_f64();
    println!(
        "{:<34} {:>7.3} s  {:>6.2} GiB/s",
        "scan + hash tasks (1 thread)",
        best.as_secs_f64(),
        ours
    );
    let refs: Vec<&std::path::Path> = paths.iter().map(PathBuf::as_path).collect();
    for (label, best) in b3sum(repeat, &refs) {
        match best {
            Ok(best) => {
                let theirs = gib / best.as_secs_f64();
                println!(
                    "{label:<34} {:>7.3} s  {theirs:>6.2} GiB/s   ours / theirs = {:.2}",
                    best.as_secs_f64(),
                    ours / theirs
                );
            }
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
    write_payload_seeded(path, len, 0)
}

/// [`write_payload`] with a seed, so the files of a game differ; `len` need not be whole MiB.
fn write_payload_seeded(path: &std::path::Path, len: u64, seed: u64) -> Result<()> {
    let mut out = std::io::BufWriter::new(File::create(path)?);
    let mut state = ContentHash::of(&[b"hash_bench seed".as_slice(), &seed.to_le_bytes()].concat());
    let mut piece = Vec::with_capacity(1 << 20);
    let mut left = len;
    while left > 0 {
        piece.clear();
        while piece.len() < 1 << 20 {
            state = ContentHash::of(state.as_bytes());
            piece.extend_from_slice(state.as_bytes());
        }
        let now = left.min(1 << 20);
        out.write_all(&piece[..now as usize])?;
        left -= now;
    }
    out.flush()?;
    Ok(())
}
