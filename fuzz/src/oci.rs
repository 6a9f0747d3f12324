//! Targets for OCI JSON (index, manifest, config) in a layout, and for
//! oci-archive / docker-archive tars.
//!
//! A layout is content-addressed, so a fuzzer could never make one
//! document name another by digest. The `oci_layout` input is therefore a
//! list of documents separated by [`SEPARATOR`] lines: the first is `index.json`,
//! the others are blobs; in document `i`, `@N` becomes the digest
//! (`sha256:...`) of document `N` and `#N` its size, for `N > i` (so
//! references form no cycle, as in a real layout).

use std::path::Path;

use image_layout::layout::MT_MANIFEST;
use image_layout::{Digest, OciLayout};

/// Between two documents of an `oci_layout` input.
pub const SEPARATOR: &[u8] = b"\n=====\n";

fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < 9 {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(i) => {
                out.push(rest[..i].to_vec());
                rest = &rest[i + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    out.push(rest.to_vec());
    out
}

/// Splits an `oci_layout` input into `index.json` and blobs, resolving
/// the `@N` / `#N` references.
pub fn documents(data: &[u8]) -> Vec<Vec<u8>> {
    let mut docs = split(data);
    for i in (0..docs.len()).rev() {
        let mut out = Vec::with_capacity(docs[i].len());
        let src = &docs[i];
        let mut k = 0;
        while k < src.len() {
            let c = src[k];
            let n = src
                .get(k + 1)
                .and_then(|d| d.is_ascii_digit().then(|| usize::from(d - b'0')));
            match (c, n) {
                (b'@', Some(n)) if n > i && n < docs.len() => {
                    out.extend_from_slice(Digest::of(&docs[n]).to_string().as_bytes());
                    k += 2;
                }
                (b'#', Some(n)) if n > i && n < docs.len() => {
                    out.extend_from_slice(docs[n].len().to_string().as_bytes());
                    k += 2;
                }
                _ => {
                    out.push(c);
                    k += 1;
                }
            }
        }
        docs[i] = out;
    }
    docs
}

/// Writes `docs` as a layout in `dir`.
pub fn write_layout(dir: &Path, docs: &[Vec<u8>]) {
    let layout = OciLayout::create(dir).expect("layout skeleton");
    std::fs::write(dir.join("index.json"), docs.first().map_or(&[][..], |d| d))
        .expect("index.json");
    for d in docs.iter().skip(1) {
        layout.put_blob(d).expect("blob");
    }
}

/// OCI JSON in a layout, through everything that reads a layout: open,
/// tags, resolve, images, reachable, blob checks, `inspect` and the
/// layout check of `verify`.
pub fn layout(data: &[u8]) {
    let dir = crate::scratch_dir();
    write_layout(dir.path(), &documents(data));
    let Ok(layout) = OciLayout::open(dir.path()) else {
        return;
    };
    let _ = layout.tags();
    if let Ok(index) = layout.read_index() {
        for d in index.manifests() {
            let _ = layout.images(d);
            let _ = layout.reachable(d);
            let _ = layout.read_manifest(d);
            let _ = layout.read_index_blob(d);
        }
    }
    let _ = layout.resolve(None);
    let _ = layout.check_blobs(None);
    let _ = netshoot_build::inspect::inspect(dir.path(), None, false);
    let _ = netshoot_build::verify::check_layout(&layout, dir.path());
    // Every blob also as a referrer manifest.
    for entry in std::fs::read_dir(dir.path().join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            let _ = registry::referrers::referrer_descriptor(&bytes, MT_MANIFEST);
        }
    }
}

/// An oci-archive or docker-archive, unpacked as `push --archive` does.
pub fn archive(data: &[u8]) {
    let dir = crate::scratch_dir();
    let file = dir.path().join("in.tar");
    std::fs::write(&file, data).expect("writing the archive");
    let dest = dir.path().join("out");
    if let Ok(layout) = image_layout::archive::read_archive(&file, &dest) {
        if let Ok(top) = layout.resolve(None) {
            let _ = layout.images(&top);
        }
    }
}

/// The documents of a small valid layout in `oci_layout`'s input form:
/// an index naming an image index of one image (config and one gzip
/// layer), tagged `fuzz`.
pub fn seed_documents() -> Vec<Vec<u8>> {
    let layer = crate::deb::compress(
        &crate::deb::tar_of(&[
            crate::deb::Item::Dir("etc/"),
            crate::deb::Item::File("etc/motd", b"hi\n", 0o644),
        ]),
        ".gz",
    );
    let diff = Digest::of(&flate2_decode(&layer)).to_string();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{{"Entrypoint":["/bin/sh"],"Env":["PATH=/bin"],"Labels":{{"a":"b"}}}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}},"history":[{{"created_by":"fuzz"}}]}}"#
    );
    // Documents: 0 index.json, 1 image index, 2 manifest, 3 config, 4 layer.
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@3","size":#3},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"@4","size":#4}]}"#;
    let image_index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@2","size":#2,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
    let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"@1","size":#1,"annotations":{"org.opencontainers.image.ref.name":"fuzz"}}]}"#;
    vec![
        index.as_bytes().to_vec(),
        image_index.as_bytes().to_vec(),
        manifest.as_bytes().to_vec(),
        config.into_bytes(),
        layer,
    ]
}

fn flate2_decode(gz: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// The seed layout's documents joined into one `oci_layout` input.
pub fn seed_layout_input(docs: &[Vec<u8>]) -> Vec<u8> {
    docs.join(SEPARATOR)
}

/// The seed layout written to `dir` (references resolved).
pub fn seed_layout(dir: &Path) -> OciLayout {
    let docs = documents(&seed_layout_input(&seed_documents()));
    write_layout(dir, &docs);
    OciLayout::open(dir).expect("seed layout opens")
}
