//! File metadata carried in an invitation's `<comment>`, so that a receiver knows a
//! file's name, size and digest before it accepts (our convention on top of XEP-0037
//! "Stream administration": "comment blocks … passed to the invitee").
//!
//! ```xml
//! <comment xmlns='jabber:iq:dsps'>
//!   <file name='photo.jpg' size='1048576' sha256='9f86d0…'/>
//! </comment>
//! ```
//!
//! A child element rather than attributes on `<comment>` itself, because the XEP
//! leaves a comment's content free-form: a client that does not know `<file/>` still
//! sees a well-formed comment, and other comments can sit beside it. `size` is in
//! bytes, `sha256` is lowercase hex. The name is the sender's; a receiver must not
//! trust it as a path ([`FileMeta::safe_name`]).
//!
//! No I/O but [`FileMeta::of_file`], which reads the file once.

use std::path::Path;

use minidom::Element;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::proto::xml::{attr, get_attr, NS_DSPS};

/// Bytes read from a file at a time while hashing it.
const HASH_CHUNK: usize = 256 * 1024;
/// Longest file name [`FileMeta::safe_name`] returns, in bytes (the usual file
/// system limit for one path component).
pub const MAX_NAME_BYTES: usize = 255;
/// The name used when the sender's name has nothing usable in it.
pub const FALLBACK_NAME: &str = "file";

/// What a receiver needs to know about a file before accepting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The sender's file name (untrusted: see [`FileMeta::safe_name`]).
    pub name: String,
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
}

impl FileMeta {
    /// Reads `path` once to get its size and digest; the name is its last component.
    pub async fn of_file(path: &Path) -> std::io::Result<FileMeta> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; HASH_CHUNK];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| FALLBACK_NAME.to_string());
        Ok(FileMeta {
            name,
            size,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// The `<comment><file …/></comment>` carried in the invitation.
    pub fn to_comment(&self) -> Element {
        let file = Element::builder("file", NS_DSPS);
        let file = attr(file, "name", self.name.as_str());
        let file = attr(file, "size", self.size.to_string());
        let file = attr(file, "sha256", self.sha256.as_str()).build();
        Element::builder("comment", NS_DSPS).append(file).build()
    }

    /// Finds the metadata among an invitation's comments: the first `<file/>` with a
    /// decimal size and a 64-digit hex sha256.
    pub fn from_comments(comments: &[Element]) -> Option<FileMeta> {
        comments
            .iter()
            .flat_map(|c| c.children())
            .find(|f| f.is("file", NS_DSPS))
            .and_then(|f| {
                let sha256 = get_attr(f, "sha256")?.trim().to_ascii_lowercase();
                let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
                Some(FileMeta {
                    name: get_attr(f, "name").unwrap_or(FALLBACK_NAME).to_string(),
                    size: get_attr(f, "size")?.trim().parse().ok()?,
                    sha256: valid.then_some(sha256)?,
                })
            })
    }

    /// The sender's name made safe to create in a directory of our choosing: its last
    /// path component only (`/` and `\` both count as separators), control characters
    /// and characters some file systems refuse replaced by `_`, no leading dots (no
    /// hidden files, no `..`), surrounding whitespace trimmed, at most
    /// [`MAX_NAME_BYTES`]; [`FALLBACK_NAME`] if nothing is left.
    ///
    /// ```
    /// use dsps::client::file_meta::FileMeta;
    /// let meta = |name: &str| FileMeta { name: name.into(), size: 0, sha256: String::new() };
    /// assert_eq!(meta("../../etc/passwd").safe_name(), "passwd");
    /// assert_eq!(meta("..").safe_name(), "file");
    /// assert_eq!(meta(".bashrc").safe_name(), "bashrc");
    /// assert_eq!(meta("C:\\x\\a:b.txt").safe_name(), "a_b.txt");
    /// ```
    pub fn safe_name(&self) -> String {
        let last = self.name.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last
            .chars()
            .map(|c| {
                if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let trimmed = cleaned
            .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
            .trim_end();
        let mut name = String::new();
        for c in trimmed.chars() {
            if name.len() + c.len_utf8() > MAX_NAME_BYTES {
                break;
            }
            name.push(c);
        }
        let name = name.trim_end();
        if name.is_empty() {
            FALLBACK_NAME.to_string()
        } else {
            name.to_string()
        }
    }
}

/// `name` with ` (n)` before its extension, for picking a name that is not taken
/// yet: `photo.jpg` → `photo (1).jpg`, `README` → `README (1)`. `n == 0` is `name`.
///
/// ```
/// assert_eq!(dsps::client::file_meta::numbered("photo.jpg", 2), "photo (2).jpg");
/// assert_eq!(dsps::client::file_meta::numbered("README", 1), "README (1)");
/// ```
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> FileMeta {
        FileMeta {
            name: name.into(),
            size: 1,
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn metadata_round_trips_through_a_comment() {
        let meta = FileMeta {
            name: "a 'quoted' <name>.bin".into(),
            size: 67_108_864,
            sha256: "ab".repeat(32),
        };
        let text = String::from(&meta.to_comment());
        let back: Element = text.parse().expect("our own XML");
        assert_eq!(FileMeta::from_comments(&[back]), Some(meta));
    }

    #[test]
    fn comments_without_valid_metadata_are_ignored() {
        let plain: Element = "<comment xmlns='jabber:iq:dsps'>hi</comment>"
            .parse()
            .expect("test XML");
        assert_eq!(FileMeta::from_comments(&[plain]), None);
        let bad: Element =
            "<comment xmlns='jabber:iq:dsps'><file name='x' size='1' sha256='zz'/></comment>"
                .parse()
                .expect("test XML");
        assert_eq!(FileMeta::from_comments(&[bad]), None);
        let no_size: Element = format!(
            "<comment xmlns='jabber:iq:dsps'><file name='x' sha256='{}'/></comment>",
            "ab".repeat(32)
        )
        .parse()
        .expect("test XML");
        assert_eq!(FileMeta::from_comments(&[no_size]), None);
    }

    #[test]
    fn safe_names_keep_only_the_last_component() {
        assert_eq!(meta("/etc/passwd").safe_name(), "passwd");
        assert_eq!(meta("a/b\\c.txt").safe_name(), "c.txt");
        assert_eq!(meta("dir/").safe_name(), FALLBACK_NAME);
    }

    #[test]
    fn safe_names_have_no_leading_dots_or_controls() {
        assert_eq!(meta("...hidden").safe_name(), "hidden");
        assert_eq!(meta(". .x").safe_name(), "x");
        assert_eq!(meta("a\nb\0c").safe_name(), "a_b_c");
        assert_eq!(meta("  spaced  ").safe_name(), "spaced");
        assert_eq!(meta("").safe_name(), FALLBACK_NAME);
        assert_eq!(meta("...").safe_name(), FALLBACK_NAME);
    }

    #[test]
    fn safe_names_are_bounded_on_a_char_boundary() {
        let long = "é".repeat(200);
        let name = meta(&long).safe_name();
        assert!(name.len() <= MAX_NAME_BYTES);
        assert_eq!(name.chars().count(), MAX_NAME_BYTES / 2);
    }

    #[test]
    fn numbered_names_go_before_the_extension() {
        assert_eq!(numbered("a.tar.gz", 3), "a.tar (3).gz");
        assert_eq!(numbered("photo.jpg", 0), "photo.jpg");
        assert_eq!(numbered("x", 1), "x (1)");
    }
}
