//! The image builder: step 6 of the seed. From a base image, it makes a system image with
//! the PPAs' packages installed, for the test runner to test in.
//!
//! [`rootfs::RootfsImageBuilder`] is the local backend: base images are root filesystem
//! tarballs made by `mmdebstrap` ([`ImageBuilder::bootstrap`]), and an image build
//! mounts an overlay on one (unpacked once and cached) in a user namespace, adds the PPAs
//! as apt sources checked by their keys, installs the packages, checks their versions
//! against the PPAs, and packs the result.

pub mod rootfs;
mod userns;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::queue::Done;

/// What kind of image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ImageType {
    /// A root filesystem tarball (`.tar.zst`), tested with autopkgtest's unshare server.
    #[default]
    Rootfs,
    /// A bootable disk image (qcow2), tested with qemu.
    Cloud,
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageType::Rootfs => "ROOTFS",
            ImageType::Cloud => "CLOUD",
        })
    }
}

impl std::str::FromStr for ImageType {
    type Err = Error;

    fn from_str(s: &str) -> Result<ImageType> {
        match s.to_ascii_uppercase().as_str() {
            "ROOTFS" => Ok(ImageType::Rootfs),
            "CLOUD" => Ok(ImageType::Cloud),
            _ => Err(Error::invalid(format!(
                "image type {s:?}: use ROOTFS or CLOUD"
            ))),
        }
    }
}

/// The image an image build starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseImage {
    /// Its type (default `ROOTFS`).
    #[serde(default)]
    pub image_type: ImageType,
    /// Its URL in the data store (one).
    pub url_list: Vec<String>,
    /// Its series (`bookworm`).
    pub series: String,
}

/// The seed's `build_image` message, with what it leaves implicit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildImage {
    /// The base image.
    pub base_image: BaseImage,
    /// PPAs added as apt sources (`ppa:ci-team/ppa_build_1`), in order of preference.
    pub ppa_list: Vec<String>,
    /// Binary packages to install.
    pub package_list: Vec<String>,
    /// Where progress goes (`image-builder-1-exchange`).
    pub progress_queue: String,
    /// The ticket the image is for (its container `ticket.<id>.images`; none: the queue's).
    #[serde(default)]
    pub ticket_id: Option<i64>,
    /// The architecture (default: the host's).
    #[serde(default)]
    pub architecture: Option<String>,
}

/// A request for a base image of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// The series (`bookworm`).
    pub series: String,
    /// Its type (default `ROOTFS`).
    #[serde(default)]
    pub image_type: ImageType,
    /// The architecture (default: the host's).
    #[serde(default)]
    pub architecture: Option<String>,
    /// Make it again even when one made from the same recipe is stored.
    #[serde(default)]
    pub refresh: bool,
    /// Where progress goes.
    pub progress_queue: String,
}

/// Makes system images.
#[async_trait]
pub trait ImageBuilder: Send + Sync + fmt::Debug {
    /// Makes (or finds, by its recipe's digest) a base image of a series and stores it in
    /// the container `images`; the final message has its URL in `url_list`.
    ///
    /// # Errors
    /// Only when nothing can be reported (a malformed queue name, a broken queue); a
    /// failure is a `FAILED` final message.
    async fn bootstrap(&self, request: Bootstrap, cancel: CancellationToken) -> Result<Done>;

    /// Builds `request` to its end, reporting on its progress queue; the final message is
    /// the seed's `{"state": "COMPLETED", "url_list": [...]}` (with the installed
    /// packages' manifest beside it), or `FAILED` with the reason. `cancel` ends the build
    /// and its whole process tree.
    ///
    /// # Errors
    /// Only when nothing can be reported.
    async fn build_image(&self, request: BuildImage, cancel: CancellationToken) -> Result<Done>;
}

/// Checks a binary package name as apt is given it: Debian's rules (lower-case letters,
/// digits, `+`, `-`, `.`; starting with a letter or digit; at least two characters), so
/// that nothing from a request reads as an option or a pattern.
///
/// # Errors
/// `InvalidInput` naming the package.
pub fn check_package_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    if first_ok && rest_ok && name.len() >= 2 && name.len() <= 128 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "package_list: {name:?} is not a binary package name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_messages_read_as_the_seed_writes_them() {
        let request: BuildImage = serde_json::from_value(serde_json::json!({
            "base_image": {
                "image_type": "ROOTFS",
                "url_list": ["file:///srv/store/images/bookworm-amd64.rootfs.tar.zst"],
                "series": "bookworm"
            },
            "ppa_list": ["ppa:ci-team/ppa_build_1", "ppa:ci-team/ppa_archive"],
            "package_list": ["hello-ci"],
            "progress_queue": "image-builder-1-exchange"
        }))
        .unwrap();
        assert_eq!(request.base_image.image_type, ImageType::Rootfs);
        assert_eq!(request.ticket_id, None);
        let cloud: BaseImage = serde_json::from_value(serde_json::json!({
            "image_type": "CLOUD", "url_list": [], "series": "saucy"
        }))
        .unwrap();
        assert_eq!(cloud.image_type, ImageType::Cloud);
        assert!(serde_json::from_value::<BaseImage>(serde_json::json!({
            "image_type": "ISO", "url_list": [], "series": "saucy"
        }))
        .is_err());
        assert_eq!("rootfs".parse::<ImageType>().unwrap(), ImageType::Rootfs);
    }

    #[test]
    fn package_names_follow_debian_rules() {
        for good in ["hello", "hello-ci", "libc6", "g++", "python3.11", "0ad"] {
            check_package_name(good).unwrap();
        }
        for bad in [
            "",
            "a",
            "-o",
            "Hello",
            "hello ci",
            "hello/ci",
            "hello=1.0",
            "../x",
            "x*",
        ] {
            assert!(check_package_name(bad).is_err(), "{bad:?}");
        }
    }
}
