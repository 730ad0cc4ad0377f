//! The domain model: tickets, source packages, uploads, subtickets, artifacts, progress.
//!
//! These are the resources of the ticket system, serialised with the seed's JSON field names
//! (`owner`, `bug_id`, `sourcepackage`, `source_package_upload`, …). A reference from one
//! resource to another is a [`Uri`], written on the wire as `/api/v1/<resource>/<id>/` and
//! read back from that form, from a full `http://host/api/v1/…` URL, without the trailing
//! slash, or as a bare number. The `New*` types are the bodies of create calls; each has a
//! `validate` method that every backend calls, so the rules live in one place.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use crate::error::{Error, Result};

/// The path prefix of every REST resource.
pub const API_PREFIX: &str = "/api/v1";

/// Longest accepted title, owner, assignee, artifact name or package name, in bytes.
pub const MAX_SHORT_FIELD: usize = 255;
/// Longest accepted description or progress message, in bytes.
pub const MAX_LONG_FIELD: usize = 64 * 1024;
/// Longest accepted URL (bug, artifact reference), in bytes.
pub const MAX_URL: usize = 2048;

/// A kind of REST resource, named as in its URI (`/api/v1/<NAME>/<id>/`).
pub trait Resource {
    /// The resource's name in URIs.
    const NAME: &'static str;
}

/// A reference to a resource of kind `R` by id, written `/api/v1/<R::NAME>/<id>/`.
pub struct Uri<R> {
    id: i64,
    kind: PhantomData<fn() -> R>,
}

impl<R: Resource> Uri<R> {
    /// A reference to the resource with this id.
    pub fn new(id: i64) -> Uri<R> {
        Uri {
            id,
            kind: PhantomData,
        }
    }

    /// The referenced resource's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Parses `/api/v1/<name>/<id>/`, with or without the trailing slash, with or without a
    /// scheme and host in front, or a bare positive number.
    pub fn parse(text: &str) -> Result<Uri<R>> {
        let bad = || {
            Error::invalid(format!(
                "not a {} reference: {text:?} (expected {API_PREFIX}/{}/<id>/)",
                R::NAME,
                R::NAME
            ))
        };
        let text = text.trim();
        if let Ok(id) = text.parse::<i64>() {
            return if id > 0 { Ok(Uri::new(id)) } else { Err(bad()) };
        }
        let path = match text.find("://") {
            Some(scheme_end) => {
                let rest = &text[scheme_end + 3..];
                match rest.find('/') {
                    Some(slash) => &rest[slash..],
                    None => return Err(bad()),
                }
            }
            None => text,
        };
        let rest = path
            .strip_prefix(API_PREFIX)
            .and_then(|p| p.strip_prefix('/'))
            .and_then(|p| p.strip_prefix(R::NAME))
            .and_then(|p| p.strip_prefix('/'))
            .ok_or_else(bad)?;
        let digits = rest.strip_suffix('/').unwrap_or(rest);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match digits.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Uri::new(id)),
            _ => Err(bad()),
        }
    }
}

impl<R> Clone for Uri<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Uri<R> {}
impl<R> PartialEq for Uri<R> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl<R> Eq for Uri<R> {}
impl<R> std::hash::Hash for Uri<R> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

impl<R: Resource> fmt::Display for Uri<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{API_PREFIX}/{}/{}/", R::NAME, self.id)
    }
}

impl<R: Resource> fmt::Debug for Uri<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<R: Resource> FromStr for Uri<R> {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Uri::parse(s)
    }
}

impl<R: Resource> Serialize for Uri<R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de, R: Resource> Deserialize<'de> for Uri<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor<R>(PhantomData<fn() -> R>);
        impl<R: Resource> serde::de::Visitor<'_> for Visitor<R> {
            type Value = Uri<R>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a {} URI such as {API_PREFIX}/{}/1/", R::NAME, R::NAME)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Uri<R>, E> {
                Uri::parse(v).map_err(|e| E::custom(e.message()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Uri<R>, E> {
                if v > 0 {
                    Ok(Uri::new(v))
                } else {
                    Err(E::custom(format!("not a valid {} id: {v}", R::NAME)))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Uri<R>, E> {
                match i64::try_from(v) {
                    Ok(v) => self.visit_i64(v),
                    Err(_) => Err(E::custom(format!("not a valid {} id: {v}", R::NAME))),
                }
            }
        }
        deserializer.deserialize_any(Visitor(PhantomData))
    }
}

impl<R: Resource> utoipa::PartialSchema for Uri<R> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(format!(
                "URI of a {} resource: {API_PREFIX}/{}/<id>/",
                R::NAME,
                R::NAME
            )))
            .examples([serde_json::json!(format!("{API_PREFIX}/{}/1/", R::NAME))])
            .into()
    }
}
impl<R: Resource> ToSchema for Uri<R> {}

macro_rules! resource {
    ($ty:ty, $name:literal) => {
        impl Resource for $ty {
            const NAME: &'static str = $name;
        }
    };
}

/// A step of a ticket's workflow, in the order a request goes through them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowStep {
    /// Created; files being uploaded.
    New,
    /// Handed to the lander, waiting for a worker.
    Queued,
    /// Waiting for a per-request archive (PPA).
    PpaAssignment,
    /// Building the source packages into the PPA.
    SourceBuild,
    /// Building a system image with the new binaries.
    ImageBuild,
    /// Running the packages' DEP-8 tests in the image.
    ImageTest,
    /// Copying the binaries into the archive PPA.
    Publish,
    /// The request is over (see the status for its outcome).
    Complete,
}

impl WorkflowStep {
    /// Every step, in order.
    pub const ALL: [WorkflowStep; 8] = [
        WorkflowStep::New,
        WorkflowStep::Queued,
        WorkflowStep::PpaAssignment,
        WorkflowStep::SourceBuild,
        WorkflowStep::ImageBuild,
        WorkflowStep::ImageTest,
        WorkflowStep::Publish,
        WorkflowStep::Complete,
    ];

    /// The wire name (`SOURCE_BUILD`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStep::New => "NEW",
            WorkflowStep::Queued => "QUEUED",
            WorkflowStep::PpaAssignment => "PPA_ASSIGNMENT",
            WorkflowStep::SourceBuild => "SOURCE_BUILD",
            WorkflowStep::ImageBuild => "IMAGE_BUILD",
            WorkflowStep::ImageTest => "IMAGE_TEST",
            WorkflowStep::Publish => "PUBLISH",
            WorkflowStep::Complete => "COMPLETE",
        }
    }
}

impl FromStr for WorkflowStep {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        WorkflowStep::ALL
            .into_iter()
            .find(|step| step.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown workflow step {s:?} (one of {})",
                    WorkflowStep::ALL.map(|s| s.as_str()).join(", ")
                ))
            })
    }
}

impl fmt::Display for WorkflowStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The status of the ticket's current workflow step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    /// Not started yet.
    Pending,
    /// Running.
    InProgress,
    /// Finished well.
    Succeeded,
    /// Finished badly; the ticket is closed.
    Failed,
    /// Stopped on request; the ticket is closed.
    Cancelled,
}

impl StepStatus {
    /// Every status.
    pub const ALL: [StepStatus; 5] = [
        StepStatus::Pending,
        StepStatus::InProgress,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Cancelled,
    ];

    /// The wire name (`IN_PROGRESS`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "PENDING",
            StepStatus::InProgress => "IN_PROGRESS",
            StepStatus::Succeeded => "SUCCEEDED",
            StepStatus::Failed => "FAILED",
            StepStatus::Cancelled => "CANCELLED",
        }
    }
}

impl FromStr for StepStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        StepStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown step status {s:?} (one of {})",
                    StepStatus::ALL.map(|s| s.as_str()).join(", ")
                ))
            })
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Whether a ticket is still going (`open`) or over (`closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketState {
    /// The request has not finished.
    Open,
    /// The request is over: completed, failed or cancelled.
    Closed,
}

impl TicketState {
    /// The state of a ticket at `step` with `status`.
    pub fn of(step: WorkflowStep, status: StepStatus) -> TicketState {
        let over = matches!(status, StepStatus::Failed | StepStatus::Cancelled)
            || (step == WorkflowStep::Complete && status == StepStatus::Succeeded);
        if over {
            TicketState::Closed
        } else {
            TicketState::Open
        }
    }
}

impl FromStr for TicketState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "open" => Ok(TicketState::Open),
            "closed" => Ok(TicketState::Closed),
            _ => Err(Error::invalid(format!(
                "unknown ticket state {s:?} (open or closed)"
            ))),
        }
    }
}

/// The type of an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArtifactType {
    /// A file of a source package upload (.changes, .dsc, tarballs).
    Spu,
    /// A built binary package (.deb).
    Binary,
    /// A build log.
    BuildLog,
    /// A system image.
    Image,
    /// A test log.
    TestLog,
    /// A machine-readable test result (JUnit, subunit, summary).
    TestResult,
    /// A log of another step (image build, publication).
    Log,
}

impl ArtifactType {
    /// Every type.
    pub const ALL: [ArtifactType; 7] = [
        ArtifactType::Spu,
        ArtifactType::Binary,
        ArtifactType::BuildLog,
        ArtifactType::Image,
        ArtifactType::TestLog,
        ArtifactType::TestResult,
        ArtifactType::Log,
    ];

    /// The wire name (`BUILD_LOG`).
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactType::Spu => "SPU",
            ArtifactType::Binary => "BINARY",
            ArtifactType::BuildLog => "BUILD_LOG",
            ArtifactType::Image => "IMAGE",
            ArtifactType::TestLog => "TEST_LOG",
            ArtifactType::TestResult => "TEST_RESULT",
            ArtifactType::Log => "LOG",
        }
    }
}

impl FromStr for ArtifactType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ArtifactType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown artifact type {s:?} (one of {})",
                    ArtifactType::ALL.map(|t| t.as_str()).join(", ")
                ))
            })
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A request for CI of one or more source package uploads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ticket {
    /// The ticket's id.
    pub id: i64,
    /// This ticket's URI.
    #[schema(value_type = String)]
    pub resource_uri: Uri<Ticket>,
    /// Who asked (an email address or a Launchpad id).
    pub owner: String,
    /// A short title.
    pub title: String,
    /// A longer description (may be empty).
    pub description: String,
    /// The Launchpad bug URL (may be empty).
    pub bug_id: String,
    /// The step the request is at.
    pub current_workflow_step: WorkflowStep,
    /// The status of that step.
    pub status: StepStatus,
    /// `open` until the request is over.
    pub state: TicketState,
    /// When the ticket was created.
    pub created_at: DateTime<Utc>,
    /// When the ticket last changed.
    pub updated_at: DateTime<Utc>,
}
resource!(Ticket, "ticket");

/// A ticket with everything that hangs off it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketDetail {
    /// The ticket itself.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// One subticket per source package upload.
    pub subtickets: Vec<Subticket>,
    /// Every artifact of the ticket and its subtickets, oldest first.
    pub artifacts: Vec<Artifact>,
    /// The history of workflow transitions, oldest first.
    pub progress: Vec<Transition>,
}

/// A source package, known by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourcePackage {
    /// The package's id.
    pub id: i64,
    /// This package's URI.
    #[schema(value_type = String)]
    pub resource_uri: Uri<SourcePackage>,
    /// The source package name (`hello`).
    pub name: String,
}
resource!(SourcePackage, "sourcepackage");

/// One version of a source package as uploaded: unique per package and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourcePackageUpload {
    /// The upload's id.
    pub id: i64,
    /// This upload's URI.
    #[schema(value_type = String)]
    pub resource_uri: Uri<SourcePackageUpload>,
    /// The source package.
    #[schema(value_type = String)]
    pub sourcepackage: Uri<SourcePackage>,
    /// The Debian version (`2.10-3`).
    pub version: String,
    /// SHA-256 over the source package (`name size sha256` lines of the `.dsc` and its files,
    /// sorted); empty if unknown.
    pub fingerprint: String,
    /// When it was first uploaded.
    pub created_at: DateTime<Utc>,
}
resource!(SourcePackageUpload, "spu");

/// The part of a ticket that concerns one source package upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Subticket {
    /// The subticket's id.
    pub id: i64,
    /// This subticket's URI.
    #[schema(value_type = String)]
    pub resource_uri: Uri<Subticket>,
    /// The source package upload it is about.
    #[schema(value_type = String)]
    pub source_package_upload: Uri<SourcePackageUpload>,
    /// The ticket it belongs to.
    #[schema(value_type = String)]
    pub ticket: Uri<Ticket>,
    /// Who looks after it.
    pub assignee: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}
resource!(Subticket, "subticket");

/// A file a step produced or consumed, stored in the data store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    /// The artifact's id.
    pub id: i64,
    /// This artifact's URI.
    #[schema(value_type = String)]
    pub resource_uri: Uri<Artifact>,
    /// The file name (`hello_2.10-3.dsc`).
    pub name: String,
    /// The subticket it belongs to, if it concerns one upload.
    #[schema(value_type = Option<String>)]
    pub subticket: Option<Uri<Subticket>>,
    /// The ticket it belongs to.
    #[schema(value_type = String)]
    pub ticket: Uri<Ticket>,
    /// Where the file is: the data store object's URL.
    pub reference: String,
    /// What it is.
    #[serde(rename = "type")]
    pub artifact_type: ArtifactType,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}
resource!(Artifact, "artifact");

/// One entry of a ticket's progress history: the ticket moved to `step` with `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Transition {
    /// The transition's id (increasing in the order they were recorded).
    pub id: i64,
    /// This transition's URI.
    #[schema(value_type = String)]
    pub resource_uri: Uri<Transition>,
    /// The ticket that moved.
    #[schema(value_type = String)]
    pub ticket: Uri<Ticket>,
    /// The step it is now at.
    pub step: WorkflowStep,
    /// The status of that step.
    pub status: StepStatus,
    /// What happened, for people (`building hello 2.10-3: 45%`).
    pub message: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}
resource!(Transition, "progress");

/// Body of `create_ticket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// Who asks: an address, a Launchpad id, or `Name <address>` (stored as the address,
    /// at most 255 bytes).
    #[schema(min_length = 1)]
    pub owner: String,
    /// A short title (one line, at most 255 bytes).
    #[schema(min_length = 1, max_length = 255)]
    pub title: String,
    /// A longer description.
    #[serde(default)]
    pub description: String,
    /// A Launchpad bug: its URL or its number (made into its URL).
    #[serde(default)]
    pub bug_id: String,
}

impl NewTicket {
    /// Checks the fields and normalises the bug reference; the stored form is returned.
    pub fn validate(mut self) -> Result<NewTicket> {
        self.owner = person_address("owner", &self.owner)?;
        check_short("title", &self.title)?;
        check_long("description", &self.description)?;
        self.bug_id = normalise_bug(&self.bug_id)?;
        Ok(self)
    }
}

/// The address that stands for a person (an owner, an assignee): `Jane Dev
/// <jane@example.com>` (the form of `Maintainer:`, `DEBEMAIL` and dch) gives
/// `jane@example.com`; an address or a Launchpad id alone is taken as it is.
///
/// # Errors
/// `InvalidInput` naming `field` when the text is empty, too long, holds spaces outside a
/// name, or has a `<` without a matching `>`.
pub fn person_address(field: &str, text: &str) -> Result<String> {
    let text = text.trim();
    let address = match (text.find('<'), text.rfind('>')) {
        (None, None) => text,
        (Some(start), Some(end)) if start < end && text[end + 1..].trim().is_empty() => {
            text[start + 1..end].trim()
        }
        _ => {
            return Err(Error::invalid(format!(
                "{field}: {text:?} is neither an address nor of the form \"Name <address>\""
            )))
        }
    };
    check_short(field, address)?;
    if address
        .chars()
        .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return Err(Error::invalid(format!(
            "{field}: {address:?} must not contain spaces (give an address, or \"Name <address>\")"
        )));
    }
    Ok(address.to_owned())
}

/// The URL of Launchpad bug `number`.
pub fn launchpad_bug_url(number: u64) -> String {
    format!("https://bugs.launchpad.net/bugs/{number}")
}

fn normalise_bug(bug: &str) -> Result<String> {
    let bug = bug.trim();
    if bug.is_empty() {
        return Ok(String::new());
    }
    if bug.bytes().all(|b| b.is_ascii_digit()) {
        return match bug.parse::<u64>() {
            Ok(n) if n > 0 => Ok(launchpad_bug_url(n)),
            _ => Err(Error::invalid(format!("bug_id: not a bug number: {bug}"))),
        };
    }
    check_url("bug_id", bug)?;
    Ok(bug.to_owned())
}

/// Body of `get_or_create_source_package`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSourcePackage {
    /// The source package name.
    pub name: String,
}

/// Body of `create_source_package_upload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSourcePackageUpload {
    /// The source package.
    #[schema(value_type = String)]
    pub sourcepackage: Uri<SourcePackage>,
    /// The Debian version.
    pub version: String,
    /// SHA-256 over the source package, as [`crate::upload`] computes it.
    #[serde(default)]
    pub fingerprint: String,
}

impl NewSourcePackageUpload {
    /// Checks the fields.
    pub fn validate(self) -> Result<NewSourcePackageUpload> {
        check_version(&self.version)?;
        if !self.fingerprint.is_empty()
            && (self.fingerprint.len() != 64
                || !self.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Error::invalid(
                "fingerprint: must be 64 hexadecimal digits (a SHA-256)",
            ));
        }
        Ok(self)
    }
}

/// Body of `create_subticket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubticket {
    /// The source package upload.
    #[schema(value_type = String)]
    pub source_package_upload: Uri<SourcePackageUpload>,
    /// The ticket.
    #[schema(value_type = String)]
    pub ticket: Uri<Ticket>,
    /// Who looks after it (as a ticket's owner).
    #[schema(min_length = 1)]
    pub assignee: String,
}

impl NewSubticket {
    /// Checks the fields.
    pub fn validate(mut self) -> Result<NewSubticket> {
        self.assignee = person_address("assignee", &self.assignee)?;
        Ok(self)
    }
}

/// Body of `create_artifact`: give the subticket, or the ticket for a ticket-wide artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewArtifact {
    /// The file name.
    pub name: String,
    /// The subticket it belongs to.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub subticket: Option<Uri<Subticket>>,
    /// The ticket it belongs to (implied by the subticket when that is given).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub ticket: Option<Uri<Ticket>>,
    /// The data store object's URL.
    pub reference: String,
    /// What it is.
    #[serde(rename = "type")]
    pub artifact_type: ArtifactType,
}

impl NewArtifact {
    /// Checks the fields.
    pub fn validate(self) -> Result<NewArtifact> {
        check_short("name", &self.name)?;
        check_url("reference", &self.reference)?;
        if self.subticket.is_none() && self.ticket.is_none() {
            return Err(Error::invalid("an artifact needs a subticket or a ticket"));
        }
        Ok(self)
    }
}

/// Body of the progress call: move a ticket to `step` with `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransition {
    /// The ticket.
    #[schema(value_type = String)]
    pub ticket: Uri<Ticket>,
    /// The step it is now at.
    pub step: WorkflowStep,
    /// The status of that step.
    pub status: StepStatus,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
}

impl NewTransition {
    /// Checks the fields.
    pub fn validate(self) -> Result<NewTransition> {
        check_long("message", &self.message)?;
        Ok(self)
    }
}

/// Checks that a ticket at (`from_step`, `from_status`) may move to (`to_step`,
/// `to_status`): a ticket never goes back to an earlier step, and a closed ticket never
/// moves, but for a retry: a ticket that FAILED or was CANCELLED at a step may be taken
/// up again at that step (`IN_PROGRESS`), and is open again.
pub fn check_transition(
    from_step: WorkflowStep,
    from_status: StepStatus,
    to_step: WorkflowStep,
    to_status: StepStatus,
) -> Result<()> {
    if TicketState::of(from_step, from_status) == TicketState::Closed {
        let retry = matches!(from_status, StepStatus::Failed | StepStatus::Cancelled)
            && to_step == from_step
            && to_status == StepStatus::InProgress;
        if !retry {
            return Err(Error::conflict(format!(
                "the ticket is closed ({from_step} {from_status}); it takes no more progress \
                 (a retry takes it up again at {from_step}, IN_PROGRESS)"
            )));
        }
    }
    if to_step < from_step {
        return Err(Error::conflict(format!(
            "the ticket is at {from_step}; it cannot go back to {to_step}"
        )));
    }
    Ok(())
}

/// What changed on a ticket, as delivered by [`crate::tickets::TicketSystem::events`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketEvent {
    /// Increasing id: pass the last one seen to resume after it.
    pub id: i64,
    /// The ticket concerned.
    #[schema(value_type = String)]
    pub ticket: Uri<Ticket>,
    /// What happened.
    pub kind: EventKind,
    /// The URI of the resource created (the ticket, subticket, artifact or transition).
    pub resource_uri: String,
    /// The ticket's step after the event.
    pub step: WorkflowStep,
    /// The ticket's status after the event.
    pub status: StepStatus,
    /// For people: the transition's message, the artifact's name, …
    pub message: String,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

impl TicketEvent {
    /// Whether this event closed the ticket (no more will follow).
    pub fn closes_ticket(&self) -> bool {
        TicketState::of(self.step, self.status) == TicketState::Closed
    }
}

/// The kind of a [`TicketEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The ticket was created.
    TicketCreated,
    /// A subticket was added.
    SubticketCreated,
    /// An artifact was recorded.
    ArtifactCreated,
    /// The ticket moved (a progress call).
    Progress,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TicketCreated => "ticket_created",
            EventKind::SubticketCreated => "subticket_created",
            EventKind::ArtifactCreated => "artifact_created",
            EventKind::Progress => "progress",
        }
    }
}

impl FromStr for EventKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ticket_created" => Ok(EventKind::TicketCreated),
            "subticket_created" => Ok(EventKind::SubticketCreated),
            "artifact_created" => Ok(EventKind::ArtifactCreated),
            "progress" => Ok(EventKind::Progress),
            _ => Err(Error::invalid(format!("unknown event kind {s:?}"))),
        }
    }
}

/// Which part of a list to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PageRequest {
    /// At most this many objects (1..=1000; default 20).
    pub limit: u32,
    /// Skip this many objects first.
    pub offset: u64,
}

impl PageRequest {
    /// Default page size.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 1000;

    /// A page request with the limit clamped to `1..=MAX_LIMIT`.
    pub fn new(limit: u32, offset: u64) -> PageRequest {
        PageRequest {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            offset,
        }
    }

    /// A page request as a client asks for it: the one rule of every list, the CLI's and
    /// the API's alike.
    ///
    /// # Errors
    /// `InvalidInput` unless `limit` is 1 to [`Self::MAX_LIMIT`].
    pub fn checked(limit: u32, offset: u64) -> Result<PageRequest> {
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(Error::invalid(format!(
                "limit: must be 1 to {} (got {limit})",
                Self::MAX_LIMIT
            )));
        }
        Ok(PageRequest { limit, offset })
    }

    /// Everything up to [`Self::MAX_LIMIT`] objects.
    pub fn all() -> PageRequest {
        PageRequest::new(Self::MAX_LIMIT, 0)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest::new(Self::DEFAULT_LIMIT, 0)
    }
}

/// The `meta` part of a list: where this page is in the whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PageMeta {
    /// The page size asked for.
    pub limit: u32,
    /// How many objects were skipped.
    pub offset: u64,
    /// How many objects match in all.
    pub total_count: u64,
    /// The URL of the next page, if any.
    pub next: Option<String>,
    /// The URL of the previous page, if any.
    pub previous: Option<String>,
}

/// One page of a list of resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// Where this page is.
    pub meta: PageMeta,
    /// The objects on it.
    pub objects: Vec<T>,
}

impl<T> Page<T> {
    /// A page of `objects` out of `total_count`, without next/previous links.
    pub fn new(request: PageRequest, total_count: u64, objects: Vec<T>) -> Page<T> {
        Page {
            meta: PageMeta {
                limit: request.limit,
                offset: request.offset,
                total_count,
                next: None,
                previous: None,
            },
            objects,
        }
    }
}

/// Filters of `list_tickets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketFilter {
    /// Only this owner's tickets.
    pub owner: Option<String>,
    /// Only open or only closed tickets.
    pub state: Option<TicketState>,
    /// Only tickets at this step.
    pub step: Option<WorkflowStep>,
    /// Only tickets whose step has this status.
    pub status: Option<StepStatus>,
}

/// Filters of `list_source_packages`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourcePackageFilter {
    /// Only the package of this name.
    pub name: Option<String>,
}

/// Filters of `list_spus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SpuFilter {
    /// Only uploads of this package.
    #[schema(value_type = Option<String>)]
    pub sourcepackage: Option<Uri<SourcePackage>>,
    /// Only uploads of this version.
    pub version: Option<String>,
}

/// Filters of `list_subtickets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubticketFilter {
    /// Only this ticket's subtickets.
    #[schema(value_type = Option<String>)]
    pub ticket: Option<Uri<Ticket>>,
    /// Only subtickets of this upload.
    #[schema(value_type = Option<String>)]
    pub source_package_upload: Option<Uri<SourcePackageUpload>>,
}

/// Filters of `list_artifacts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactFilter {
    /// Only this ticket's artifacts (including its subtickets').
    #[schema(value_type = Option<String>)]
    pub ticket: Option<Uri<Ticket>>,
    /// Only this subticket's artifacts.
    #[schema(value_type = Option<String>)]
    pub subticket: Option<Uri<Subticket>>,
    /// Only artifacts of this type.
    #[serde(rename = "type")]
    pub artifact_type: Option<ArtifactType>,
}

/// Filters of `list_transitions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransitionFilter {
    /// Only this ticket's history.
    #[schema(value_type = Option<String>)]
    pub ticket: Option<Uri<Ticket>>,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{field}: longer than {max} bytes ({} bytes)",
            value.len()
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::invalid(format!(
            "{field}: contains control characters"
        )));
    }
    Ok(())
}

fn check_short(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(format!("{field}: must not be empty")));
    }
    check_text(field, value, MAX_SHORT_FIELD)?;
    if value.contains('\n') {
        return Err(Error::invalid(format!("{field}: must be one line")));
    }
    Ok(())
}

fn check_long(field: &str, value: &str) -> Result<()> {
    check_text(field, value, MAX_LONG_FIELD)
}

fn check_url(field: &str, value: &str) -> Result<()> {
    if value.len() > MAX_URL {
        return Err(Error::invalid(format!(
            "{field}: URL longer than {MAX_URL} bytes"
        )));
    }
    match url::Url::parse(value) {
        Ok(url) if !url.cannot_be_a_base() => Ok(()),
        _ => Err(Error::invalid(format!("{field}: not a URL: {value:?}"))),
    }
}

/// Checks a source package name as Debian Policy 5.6.1 defines it.
pub fn check_source_name(name: &str) -> Result<()> {
    crate::upload::validate_package_name(name)
}

/// Checks a Debian version (`[epoch:]upstream[-revision]`) as Debian Policy 5.6.12 defines it.
pub fn check_version(version: &str) -> Result<()> {
    crate::upload::DebianVersion::parse(version).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_in_every_form_the_seed_uses() {
        for text in [
            "/api/v1/ticket/1/",
            "/api/v1/ticket/1",
            "http://ticket-system-url:8000/api/v1/ticket/1/",
            "1",
        ] {
            assert_eq!(Uri::<Ticket>::parse(text).unwrap().id(), 1, "{text}");
        }
        for text in [
            "/api/v1/spu/1/",
            "/api/v1/ticket/",
            "/api/v1/ticket/0/",
            "/api/v1/ticket/-1/",
            "/api/v1/ticket/1/x",
            "ticket/1",
            "http://host",
            "",
        ] {
            assert!(Uri::<Ticket>::parse(text).is_err(), "{text}");
        }
        assert_eq!(Uri::<Ticket>::new(7).to_string(), "/api/v1/ticket/7/");
        let json: Uri<SourcePackageUpload> = serde_json::from_str("\"/api/v1/spu/3/\"").unwrap();
        assert_eq!(json.id(), 3);
        let json: Uri<SourcePackageUpload> = serde_json::from_str("3").unwrap();
        assert_eq!(json.id(), 3);
        assert!(serde_json::from_str::<Uri<SourcePackageUpload>>("true").is_err());
    }

    #[test]
    fn new_ticket_matches_the_seed_and_normalises_bugs() {
        let body = r#"{ "owner": "default-user@example.com", "title": "Default title",
            "description": "Default description",
            "bug_id": "https://bugs.launchpad.net/bugs/1234567" }"#;
        let t: NewTicket = serde_json::from_str(body).unwrap();
        let t = t.validate().unwrap();
        assert_eq!(t.bug_id, "https://bugs.launchpad.net/bugs/1234567");
        let t = NewTicket {
            bug_id: "123".into(),
            ..t
        };
        assert_eq!(
            t.validate().unwrap().bug_id,
            "https://bugs.launchpad.net/bugs/123"
        );
        let unknown = r#"{"owner": "a@b", "title": "t", "colour": "red"}"#;
        assert!(serde_json::from_str::<NewTicket>(unknown).is_err());
        let bad = NewTicket {
            owner: "a@b".into(),
            title: "t".into(),
            description: String::new(),
            bug_id: "not a url".into(),
        };
        assert!(bad.validate().is_err());
        let empty_title = NewTicket {
            owner: "a@b".into(),
            title: " ".into(),
            description: String::new(),
            bug_id: String::new(),
        };
        assert!(empty_title.validate().is_err());
    }

    #[test]
    fn owners_and_assignees_take_the_name_and_address_form() {
        for (given, stored) in [
            ("jane@example.com", "jane@example.com"),
            ("Jane Dev <jane@example.com>", "jane@example.com"),
            ("  \"Dev, Jane\" <jane@example.com>  ", "jane@example.com"),
            ("<jane@example.com>", "jane@example.com"),
            ("jane-dev", "jane-dev"),
        ] {
            let t = NewTicket {
                owner: given.into(),
                title: "t".into(),
                description: String::new(),
                bug_id: String::new(),
            };
            assert_eq!(t.validate().unwrap().owner, stored, "{given}");
            let s = NewSubticket {
                source_package_upload: Uri::new(1),
                ticket: Uri::new(1),
                assignee: given.into(),
            };
            assert_eq!(s.validate().unwrap().assignee, stored, "{given}");
        }
        for bad in [
            "Jane Dev",
            "Jane <jane@example.com",
            "Jane jane@example.com>",
            "Jane <> ",
            "Jane <jane@example.com> trailing",
            "Jane <a b@example.com>",
            "",
        ] {
            let err = person_address("owner", bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad}");
            assert!(err.to_string().starts_with("owner"), "{err}");
        }
    }

    #[test]
    fn artifact_json_uses_the_seed_field_type() {
        let body = r#"{ "name": "autopilot_1.5~dev.1_source.changes", "subticket": "/api/v1/subticket/1/",
            "reference": "https://swift.example/v1/AUTH_x/ticket.1.sources/autopilot_1.5~dev.1_source.changes",
            "type": "SPU" }"#;
        let a: NewArtifact = serde_json::from_str(body).unwrap();
        assert_eq!(a.artifact_type, ArtifactType::Spu);
        assert_eq!(a.subticket.unwrap().id(), 1);
        a.validate().unwrap();
    }

    #[test]
    fn versions_follow_policy() {
        for ok in [
            "1.5~dev.1",
            "2.10-3",
            "1:2.0-1ubuntu1",
            "1.0-1-2",
            "0",
            "1.0+dfsg-1~bpo12+1",
        ] {
            check_version(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "", "a1.0", "1.0-", "x:1.0", "1.0_1", "1.0 1", ":1.0", "1.0-a/b",
        ] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
        for ok in ["hello", "g++", "libfoo2.0", "0ad"] {
            check_source_name(ok).unwrap();
        }
        for bad in ["Hello", "a", "-foo", "foo_bar", "../x", ""] {
            assert!(check_source_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn closed_tickets_take_no_progress_but_a_retry_and_steps_go_forward() {
        use StepStatus::*;
        use WorkflowStep::*;
        check_transition(New, Pending, Queued, Pending).unwrap();
        check_transition(SourceBuild, InProgress, SourceBuild, Succeeded).unwrap();
        assert!(check_transition(SourceBuild, InProgress, New, InProgress).is_err());
        assert!(check_transition(SourceBuild, Failed, ImageBuild, InProgress).is_err());
        assert!(check_transition(Complete, Succeeded, Complete, InProgress).is_err());
        // A retry takes a failed or cancelled ticket up again where it stopped, only.
        check_transition(ImageTest, Failed, ImageTest, InProgress).unwrap();
        check_transition(SourceBuild, Cancelled, SourceBuild, InProgress).unwrap();
        assert!(check_transition(ImageTest, Failed, ImageTest, Failed).is_err());
        assert!(check_transition(ImageTest, Failed, Publish, InProgress).is_err());
        assert_eq!(TicketState::of(Complete, Succeeded), TicketState::Closed);
        assert_eq!(TicketState::of(Complete, InProgress), TicketState::Open);
    }
}
