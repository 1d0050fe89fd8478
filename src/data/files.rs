//! Datasets of image files: ImageNet-LT / iNaturalist text lists and class folders.
//! Images are decoded when loaded (JPEG, PNG) and returned as RGB.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use super::{Dataset, Image};

/// File extensions read as images in class folders (case-insensitive): torchvision's
/// ImageFolder list.
pub const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"];

/// How deep class folders are searched for images (symbolic links are followed, so a
/// link back up would otherwise never end).
const MAX_FOLDER_DEPTH: usize = 16;

/// Image files with their labels.
#[derive(Debug, Clone)]
pub struct FileDataset {
    pub paths: Vec<PathBuf>,
    pub labels: Vec<i64>,
    pub class_names: Vec<String>,
}

impl Dataset for FileDataset {
    fn len(&self) -> usize {
        self.paths.len()
    }
    fn labels(&self) -> &[i64] {
        &self.labels
    }
    fn class_names(&self) -> &[String] {
        &self.class_names
    }
    fn channels(&self) -> usize {
        3
    }
    fn image(&self, index: usize) -> Result<Image> {
        decode_rgb(&self.paths[index])
    }
}

/// Decodes an image file (by content, not extension) to 8-bit RGB. A JPEG cut short is
/// refused, as PIL refuses it ("image file is truncated"), not filled in with grey blocks.
pub fn decode_rgb(path: &Path) -> Result<Image> {
    crate::fs::check_regular_file(path, "image")?;
    let decode = || -> Result<Image> {
        let bytes = std::fs::read(path)?;
        let reader = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format()?;
        if reader.format() == Some(image::ImageFormat::Jpeg) {
            ensure!(jpeg_is_complete(&bytes), "the JPEG is truncated (no end-of-image marker after its last scan)");
        }
        let rgb = reader.decode()?.into_rgb8();
        let (width, height) = (rgb.width() as usize, rgb.height() as usize);
        Ok(Image::new(width, height, 3, rgb.into_raw()))
    };
    decode().with_context(|| format!("cannot decode image {}", path.display()))
}

/// Whether a JPEG's last end-of-image marker (FF D9) follows a start-of-scan (FF DA) and
/// none comes after it: in entropy-coded data a 0xFF byte is always followed by 0x00 or a
/// restart marker, so a file cut inside a scan has no end marker past its last scan. In a
/// whole file the end marker is in the last bytes and the first scan in the header: the
/// check reads those, not the file (it runs at every decode).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    final_end_marker(bytes).is_some_and(|end| bytes[..end].windows(2).any(is_marker(0xDA)))
}

/// Where the last JPEG end-of-image marker of `bytes` is, when no start-of-scan follows it.
fn final_end_marker(bytes: &[u8]) -> Option<usize> {
    let end = bytes.windows(2).rposition(is_marker(0xD9))?;
    (!bytes[end..].windows(2).any(is_marker(0xDA))).then_some(end)
}

fn is_marker(marker: u8) -> impl Fn(&[u8]) -> bool {
    move |w: &[u8]| w == [0xFF, marker]
}

/// How much of a JPEG's end the open-time check reads for its end-of-image marker (in the
/// last 2 bytes of a plain file; a file with data after the image is read whole).
const CHECKED_TAIL: u64 = 4 * 1024;

/// What is wrong with the image file at `path`, as far as its header and, for a JPEG, its
/// last bytes tell (what opening a dataset can afford for every file); None when nothing is.
/// Decoding checks the rest.
pub fn header_problem(path: &Path) -> Option<String> {
    let check = || -> Result<()> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        ensure!(len > 0, "the file is empty");
        let reader = image::ImageReader::new(std::io::BufReader::new(&file)).with_guessed_format()?;
        let format = reader.format().context("not an image format bcl reads (JPEG, PNG, BMP, PPM, TIFF, WebP)")?;
        let (width, height) = reader.into_dimensions()?;
        ensure!(width > 0 && height > 0, "the image is {width}×{height} pixels");
        if format == image::ImageFormat::Jpeg {
            use std::io::{Read, Seek, SeekFrom};
            let mut tail = Vec::new();
            file.seek(SeekFrom::Start(len.saturating_sub(CHECKED_TAIL)))?;
            file.read_to_end(&mut tail)?;
            // Data after the image (a phone's motion photo, padding): the whole file decides, as
            // at decoding; only such files are read whole.
            if final_end_marker(&tail).is_none() && len > CHECKED_TAIL {
                file.seek(SeekFrom::Start(0))?;
                tail.clear();
                file.read_to_end(&mut tail)?;
            }
            ensure!(final_end_marker(&tail).is_some(), "the JPEG is truncated (no end-of-image marker at its end)");
        }
        Ok(())
    };
    check().err().map(|e| format!("{e:#}"))
}

/// Reads a `relative/path.jpg label` list (ImageNet-LT, iNaturalist 2018), paths relative
/// to `root`. With `num_classes`, labels must be below it; otherwise the class count is
/// the largest label + 1. Every listed file must exist.
pub fn read_list(list: &Path, root: &Path, num_classes: Option<usize>) -> Result<FileDataset> {
    crate::fs::check_regular_file(list, "list file")?;
    let text = std::fs::read_to_string(list).with_context(|| format!("cannot read list file {}", list.display()))?;
    // A byte-order mark (Windows editors write one) is not part of the first path.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    let (mut paths, mut labels) = (Vec::new(), Vec::new());
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}, line {}", list.display(), number + 1);
        let (path, label) = line
            .rsplit_once(char::is_whitespace)
            .with_context(|| format!("{}: expected `path label`, found {line:?}", at()))?;
        let label: i64 = label.parse().with_context(|| format!("{}: label {label:?} is not an integer", at()))?;
        ensure!(label >= 0, "{}: label {label} is negative", at());
        match num_classes {
            Some(n) => ensure!((label as usize) < n, "{}: label {label} is out of range 0..{n}", at()),
            // Labels number the classes from 0, each with an image: none can reach the line count.
            None => ensure!(
                (label as usize) < lines,
                "{}: label {label}, but the list has {lines} lines: labels number the classes 0, 1, 2, … and every \
                 class needs an image",
                at()
            ),
        }
        let path = root.join(path.trim());
        crate::fs::check_regular_file(&path, "image").with_context(at)?;
        paths.push(path);
        labels.push(label);
    }
    ensure!(!paths.is_empty(), "{}: the list names no images", list.display());
    let num_classes = num_classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&m| m as usize + 1));
    let class_names = (0..num_classes).map(|i| i.to_string()).collect();
    Ok(FileDataset { paths, labels, class_names })
}

/// Checks that every class below the largest label of a list `data` read from `list` has
/// images: a label with none is a gap in the list, not a class to train.
pub fn check_every_class_listed(data: &FileDataset, list: &Path) -> Result<()> {
    let counts = super::Dataset::class_counts(data);
    if let Some(empty) = counts.iter().position(|&n| n == 0) {
        bail!(
            "{}: class {empty} has no images (the labels run from 0 to {}, so every label in between needs one)",
            list.display(),
            counts.len() - 1
        );
    }
    Ok(())
}

/// Reads `root/<class name>/…/<image>` as torchvision's ImageFolder does: classes are the
/// sub-folders in name order, images the files with an image extension anywhere below
/// them (others are skipped). No class folder, a single one, or one without images is an
/// error.
pub fn read_class_folders(root: &Path) -> Result<FileDataset> {
    let classes = visible_entries(root)
        .with_context(|| format!("cannot list class folders in {}", root.display()))?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect::<Vec<_>>();
    ensure!(
        !classes.is_empty(),
        "{}: no class folders found (expected {}/<class>/<image>)",
        root.display(),
        root.display()
    );
    ensure!(
        classes.len() > 1,
        "{}: only one class folder ({}); a classifier needs at least two",
        root.display(),
        classes[0].display()
    );
    let (mut paths, mut labels, mut class_names) = (Vec::new(), Vec::new(), Vec::new());
    for (label, class_dir) in classes.iter().enumerate() {
        let mut images = images_under(class_dir)?;
        if images.is_empty() {
            bail!("class folder {} holds no images (.{})", class_dir.display(), IMAGE_EXTENSIONS.join(", ."));
        }
        images.sort();
        labels.extend(std::iter::repeat_n(label as i64, images.len()));
        paths.extend(images);
        class_names.push(class_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    }
    Ok(FileDataset { paths, labels, class_names })
}

impl FileDataset {
    /// The images whose [`header_problem`] is some, with it, in file order, and whether they
    /// were found now: data opened again in the same process (the evaluation at the end of a
    /// run) is checked once.
    pub fn unreadable(&self) -> (Vec<(PathBuf, String)>, bool) {
        type Checked = std::collections::HashMap<u64, Vec<(PathBuf, String)>>;
        static CHECKED: std::sync::Mutex<Option<Checked>> = std::sync::Mutex::new(None);
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            self.paths.hash(&mut hasher);
            hasher.finish()
        };
        let checked = || CHECKED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bad) = checked().get_or_insert_default().get(&fingerprint) {
            return (bad.clone(), false);
        }
        let bad = self.check_headers();
        checked().get_or_insert_default().insert(fingerprint, bad.clone());
        (bad, true)
    }

    /// Every image's [`header_problem`], on threads (the reads wait on the disk).
    fn check_headers(&self) -> Vec<(PathBuf, String)> {
        let threads = 4 * std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = self.paths.len().div_ceil(threads.min(32)).max(1);
        let check = |part: &[PathBuf]| -> Vec<(PathBuf, String)> {
            part.iter().filter_map(|path| header_problem(path).map(|problem| (path.clone(), problem))).collect()
        };
        std::thread::scope(|scope| {
            let parts: Vec<_> = self.paths.chunks(chunk).map(|part| scope.spawn(move || check(part))).collect();
            parts.into_iter().flat_map(|part| part.join().expect("a header check panicked")).collect()
        })
    }

    /// This data without the images at `left_out`.
    pub fn without(&self, left_out: &[PathBuf]) -> FileDataset {
        let left_out: std::collections::HashSet<&PathBuf> = left_out.iter().collect();
        let kept = (0..self.paths.len()).filter(|&i| !left_out.contains(&self.paths[i]));
        let (paths, labels) = kept.map(|i| (self.paths[i].clone(), self.labels[i])).unzip();
        FileDataset { paths, labels, class_names: self.class_names.clone() }
    }

    /// This data split in two, stratified: of every class with at least 2 images,
    /// `fraction` of them (rounded, at least 1, never all) drawn with `seed` go to the
    /// second part; classes of one image stay whole in the first. Both keep file order.
    pub fn split_off(&self, fraction: f64, seed: u64) -> (FileDataset, FileDataset) {
        use rand::seq::IndexedRandom;
        let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(seed);
        let mut held = vec![false; self.paths.len()];
        for members in super::indices_by_class(&self.labels, self.class_names.len()) {
            if members.len() < 2 {
                continue;
            }
            let count = ((members.len() as f64 * fraction).round() as usize).clamp(1, members.len() - 1);
            for &index in members.choose_multiple(&mut rng, count) {
                held[index] = true;
            }
        }
        let part = |keep: bool| {
            let chosen = (0..self.paths.len()).filter(|&i| held[i] == keep);
            let (paths, labels) = chosen.map(|i| (self.paths[i].clone(), self.labels[i])).unzip();
            FileDataset { paths, labels, class_names: self.class_names.clone() }
        };
        (part(false), part(true))
    }
}

/// The image files in `dir` and its sub-folders, in name order (what `bcl predict` takes
/// of a folder).
pub fn images_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    collect_images(dir, MAX_FOLDER_DEPTH, &mut images)?;
    Ok(images)
}

/// The image files in `dir` and its sub-folders, `depth` levels down at most.
fn collect_images(dir: &Path, depth: usize, images: &mut Vec<PathBuf>) -> Result<()> {
    let entries = visible_entries(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for path in entries {
        if path.is_dir() {
            ensure!(depth > 0, "{}: folders nested more than {MAX_FOLDER_DEPTH} deep (a link loop?)", path.display());
            collect_images(&path, depth - 1, images)?;
        } else if has_image_extension(&path) {
            // A dangling link or a FIFO with an image's name is refused, not dropped unseen.
            crate::fs::check_regular_file(&path, "image")?;
            images.push(path);
        }
    }
    Ok(())
}

/// The paths in `dir` whose names do not start with a dot, sorted.
fn visible_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| !is_hidden(p)).collect::<Vec<_>>();
    paths.sort();
    Ok(paths)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn has_image_extension(path: &Path) -> bool {
    path.extension().map(|e| e.to_string_lossy().to_lowercase()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}
