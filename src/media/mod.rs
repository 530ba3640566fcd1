//! The file types mvgen stores: one table, and how a type is told from a file's first bytes; and
//! [`cut`], the final cut's MP4 planned from the clips' headers, [`song`], a song as one MP4 audio track,
//! and [`beats`], a song's tempo and beats.
//! Below both the providers (who check what a model made) and storage (which checks what it is
//! given and serves it back with its type), so the two always agree and neither imports the other.

pub mod beats;
pub mod cut;
pub mod song;

/// The file types mvgen stores, as (content type, extension). One table, so what a provider
/// returns, how it is stored and how it is served back always agree.
pub const MEDIA_TYPES: &[(&str, &str)] = &[
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/webp", "webp"),
    ("video/mp4", "mp4"),
    ("video/webm", "webm"),
    // The scenes create_scenes stores; `Storage::put` keeps each type to its kind's directory, so
    // a model answering JSON is never stored as an image or a video.
    ("application/json", "json"),
    // Songs for the final cut (media::song names each container's type). WebM audio is `.weba`, so
    // the extension alone says which of the two WebM types to serve.
    ("audio/mpeg", "mp3"),
    ("audio/aac", "aac"),
    ("audio/mp4", "m4a"),
    ("audio/ogg", "ogg"),
    ("audio/webm", "weba"),
    ("audio/flac", "flac"),
];

/// A content type's essence: the media type without parameters (`; charset=...`), trimmed and
/// lowercased, e.g. `image/png`; empty when there is none.
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The stored extension for a content type (parameters such as `; charset` ignored), if mvgen
/// stores that type at all.
pub fn extension_for(content_type: &str) -> Option<&'static str> {
    let essence = essence(content_type);
    MEDIA_TYPES.iter().find(|(ct, _)| *ct == essence).map(|(_, ext)| *ext)
}

/// The stored type of a file, decided from its first bytes (magic numbers) rather than from what
/// a file host claims; `None` for anything mvgen does not store.
pub fn sniff_media_type(bytes: &[u8]) -> Option<&'static str> {
    let sniffed = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.get(..4) == Some(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else if bytes.get(4..8) == Some(b"ftyp") {
        // ISO base media: MP4, and QuickTime (.mov), which browsers play as MP4.
        "video/mp4"
    } else if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        // An EBML header: WebM.
        "video/webm"
    } else {
        return None;
    };
    MEDIA_TYPES.iter().find(|(ct, _)| *ct == sniffed).map(|(ct, _)| *ct)
}

/// The stored type of a downloaded output, from its bytes: what a file host says (often a generic
/// `application/octet-stream`, or a wrong type) is not trusted. Anything that is not a stored type
/// of the `expected` kind (`"image"`, `"video"`) is refused with a message saying what it was.
pub fn checked_media_type(bytes: &[u8], expected: &str) -> Result<&'static str, String> {
    if expected == "audio" {
        // ftyp and EBML are audio here (M4A, WebM audio); whether a video track hides inside is
        // for the song probe, which reads the whole file.
        return song::sniff(bytes).map_err(|e| e.to_string());
    }
    match sniff_media_type(bytes) {
        Some(content_type) if content_type.starts_with(expected) => Ok(content_type),
        Some(content_type) => Err(format!("the output is {content_type}, not the {expected} asked for")),
        None => Err(format!(
            "the output is not in a stored {expected} format (it starts with {})",
            snippet(&bytes[..bytes.len().min(16)])
        )),
    }
}

/// The content type a stored extension is served with.
pub fn content_type_for(extension: &str) -> Option<&'static str> {
    MEDIA_TYPES.iter().find(|(_, ext)| *ext == extension).map(|(ct, _)| *ct)
}

/// The start of an unusable answer, quoted, so the error shows what came back.
pub fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let short: String = text.chars().take(120).collect();
    if short.len() < text.len() { format!("{short:?}…") } else { format!("{short:?}") }
}
