//! What a song file is, told from its first bytes before any demuxer runs: the container of an
//! accepted format, or a plain-words name for what was found instead ("WAV (RIFF/WAVE)", "a PNG
//! image", "text"), so a refusal says what it saw. Storage's sniffing (`media::sniff_media_type`)
//! answers "which stored type"; this answers "which demuxer", and "what was it" when none.

/// The containers an accepted song comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// MPEG audio frames, maybe behind an ID3v2 tag.
    Mp3,
    /// Raw AAC in ADTS frames.
    Adts,
    /// ISO base media (M4A, MP4 audio).
    Mp4,
    Ogg,
    /// Matroska or WebM (EBML).
    Webm,
    Flac,
}

impl Container {
    pub fn name(self) -> &'static str {
        match self {
            Container::Mp3 => "mp3",
            Container::Adts => "adts",
            Container::Mp4 => "mp4",
            Container::Ogg => "ogg",
            Container::Webm => "webm",
            Container::Flac => "flac",
        }
    }

    /// The content type a song in this container is stored and served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Container::Mp3 => "audio/mpeg",
            Container::Adts => "audio/aac",
            Container::Mp4 => "audio/mp4",
            Container::Ogg => "audio/ogg",
            Container::Webm => "audio/webm",
            Container::Flac => "audio/flac",
        }
    }
}

/// The size of an ID3v2 tag at the start of `head` (its 10-byte header included), 0 without one.
/// Its size is four 7-bit "synchsafe" bytes; a footer adds 10 more.
pub fn id3v2_len(head: &[u8]) -> u64 {
    match head.get(..10) {
        Some(h) if h.starts_with(b"ID3") && h[6..10].iter().all(|b| b & 0x80 == 0) => {
            let size = h[6..10].iter().fold(0u64, |acc, b| (acc << 7) | u64::from(*b));
            let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
            10 + size + footer
        }
        _ => 0,
    }
}

/// An MPEG audio frame sync (11 set bits) with a valid version and layer III; not ADTS (layer 0).
fn is_mpeg_audio(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0 && b[1] & 0x18 != 0x08 && b[1] & 0x06 == 0x02
}

/// ADTS: a 12-bit sync and layer 0.
pub fn is_adts(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == 0xFF && b[1] & 0xF6 == 0xF0
}

/// The accepted container `head` starts with (after an ID3v2 tag, which an MP3 or ADTS stream may
/// carry: `after_id3` is the bytes that follow it), or what the bytes are instead.
pub fn classify(head: &[u8], after_id3: &[u8]) -> Result<Container, String> {
    if head.starts_with(b"ID3") {
        return if is_adts(after_id3) {
            Ok(Container::Adts)
        } else if is_mpeg_audio(after_id3) || after_id3.is_empty() {
            // An ID3 tag with nothing after it is an MP3 with no frames: the demuxer says so.
            Ok(Container::Mp3)
        } else {
            Err("an ID3 tag followed by no MPEG audio or ADTS frame".to_string())
        };
    }
    if is_adts(head) {
        return Ok(Container::Adts);
    }
    if is_mpeg_audio(head) {
        return Ok(Container::Mp3);
    }
    if head.get(4..8) == Some(b"ftyp") {
        return Ok(Container::Mp4);
    }
    if head.starts_with(b"OggS") {
        return Ok(Container::Ogg);
    }
    if head.starts_with(b"fLaC") {
        return Ok(Container::Flac);
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Ok(Container::Webm);
    }
    Err(describe(head))
}

/// What a file that is not an accepted song is, in words.
fn describe(head: &[u8]) -> String {
    let riff = |form: &[u8]| head.starts_with(b"RIFF") && head.get(8..12) == Some(form);
    let named = if head.is_empty() {
        "an empty file"
    } else if riff(b"WAVE") {
        "WAV (RIFF/WAVE)"
    } else if head.starts_with(b"RF64") || head.starts_with(b"BW64") {
        "WAV (RF64)"
    } else if riff(b"AVI ") {
        "an AVI video"
    } else if riff(b"WEBP") {
        "a WebP image"
    } else if head.starts_with(b"FORM") && matches!(head.get(8..12), Some(b"AIFF") | Some(b"AIFC")) {
        "AIFF"
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "a PNG image"
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "a JPEG image"
    } else if head.starts_with(b"GIF8") {
        "a GIF image"
    } else if head.starts_with(b"%PDF") {
        "a PDF document"
    } else if head.starts_with(b"PK\x03\x04") {
        "a ZIP archive"
    } else if head.starts_with(b"caff") {
        "Core Audio (CAF)"
    } else if head.starts_with(b"#!AMR") {
        "AMR"
    } else if head.starts_with(b"MAC ") {
        "Monkey's Audio (APE)"
    } else if head.starts_with(b"wvpk") {
        "WavPack"
    } else if head.starts_with(&[0x30, 0x26, 0xB2, 0x75]) {
        "Windows Media (ASF/WMA)"
    } else if is_text(head) {
        "text"
    } else {
        return format!("not a known audio format (it starts with {})", hex(head));
    };
    named.to_string()
}

/// UTF-8 without control characters (but whitespace); a character cut by the end of `head`
/// still counts, since only the first bytes are looked at.
fn is_text(head: &[u8]) -> bool {
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
        Err(_) => return false,
    };
    !text.is_empty() && text.chars().all(|c| !c.is_control() || c.is_whitespace())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_files_are_named() {
        assert_eq!(classify(b"RIFF\x24\0\0\0WAVEfmt ", b""), Err("WAV (RIFF/WAVE)".into()));
        assert_eq!(classify(b"\x89PNG\r\n\x1a\n", b""), Err("a PNG image".into()));
        assert_eq!(classify(b"hello, world\n", b""), Err("text".into()));
        assert_eq!(classify(b"", b""), Err("an empty file".into()));
        assert!(classify(&[0, 1, 2, 3, 0xEE], b"").unwrap_err().contains("00 01 02 03 ee"));
    }

    #[test]
    fn accepted_containers_are_told_apart() {
        assert_eq!(classify(&[0xFF, 0xFB, 0x90, 0x64], b""), Ok(Container::Mp3));
        assert_eq!(classify(&[0xFF, 0xF1, 0x50, 0x80], b""), Ok(Container::Adts));
        assert_eq!(classify(b"ID3\x04\0\0\0\0\0\x0a", &[0xFF, 0xF1]), Ok(Container::Adts));
        assert_eq!(classify(b"\0\0\0\x1cftypM4A ", b""), Ok(Container::Mp4));
        assert_eq!(id3v2_len(b"ID3\x04\0\0\0\0\x01\x0a"), 10 + 128 + 10);
    }
}
