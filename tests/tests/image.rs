//! Real image builds (bases by mmdebstrap, images on an overlay, in user namespaces): a
//! bookworm base image bootstrapped and reused, an image with a PPA's packages installed at the PPA's versions, and the
//! failures: a package nowhere, a base outside the store or missing, CLOUD images, hostile
//! names, a maintainer script that tries to change the cached base, a cancel, a timeout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::archive::{Archives, Publishable};
use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::image::rootfs::{ImageOptions, RootfsImageBuilder};
use ubuntu_ci_core::image::{BaseImage, Bootstrap, BuildImage, ImageBuilder, ImageType};
use ubuntu_ci_core::model::{ArtifactFilter, ArtifactType, NewTicket, PageRequest, Uri};
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::queue::memory::MemoryQueues;
use ubuntu_ci_core::queue::{Done, DoneState, ProgressMessage, ProgressQueues, QueueName};
use ubuntu_ci_tests::apt::build_deb;
use ubuntu_ci_tests::workers::{assert_empty_dir, worker_processes};

struct Rig {
    dir: tempfile::TempDir,
    services: Services,
    archives: Archives,
    queues: Arc<MemoryQueues>,
    builder: Arc<RootfsImageBuilder>,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    // A private data dir, as under a home of mode 0700.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let work = dir.path().join("builds");
    std::fs::create_dir_all(&work).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        for path in [dir.path(), work.as_path()] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let config = Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    };
    let services = config.connect(None).await.unwrap();
    let archives = services.archives.local().unwrap().clone();
    let queues = Arc::new(MemoryQueues::default());
    let mut options = ImageOptions::new(&data);
    options.work_dir = work;
    let builder = Arc::new(RootfsImageBuilder::new(
        services.store.clone(),
        Some(services.tickets.clone()),
        archives.clone(),
        queues.clone(),
        options,
    ));
    Rig {
        dir,
        services,
        archives,
        queues,
        builder,
    }
}

fn queue() -> QueueName {
    QueueName::fresh("image-builder").unwrap()
}

async fn messages(rig: &Rig, queue: &QueueName) -> Vec<ProgressMessage> {
    rig.queues
        .subscribe(queue, None)
        .await
        .unwrap()
        .map(|m| ProgressMessage::from_json(&m.unwrap().body).unwrap())
        .collect()
        .await
}

async fn bootstrap(rig: &Rig) -> Done {
    rig.builder
        .bootstrap(
            Bootstrap {
                series: "bookworm".into(),
                image_type: ImageType::Rootfs,
                architecture: None,
                refresh: false,
                progress_queue: queue().to_string(),
            },
            CancellationToken::new(),
        )
        .await
        .unwrap()
}

fn request(base: &str, ppas: &[&str], packages: &[&str], ticket: Option<i64>) -> BuildImage {
    BuildImage {
        base_image: BaseImage {
            image_type: ImageType::Rootfs,
            url_list: vec![base.to_owned()],
            series: "bookworm".into(),
        },
        ppa_list: ppas.iter().map(|p| (*p).to_owned()).collect(),
        package_list: packages.iter().map(|p| (*p).to_owned()).collect(),
        progress_queue: queue().to_string(),
        ticket_id: ticket,
        architecture: None,
    }
}

async fn build(rig: &Rig, request: BuildImage) -> (Done, Vec<ProgressMessage>) {
    let queue = QueueName::new(request.progress_queue.clone()).unwrap();
    let done = rig
        .builder
        .build_image(request, CancellationToken::new())
        .await
        .unwrap();
    (done, messages(rig, &queue).await)
}

fn first_url(done: &Done) -> String {
    done.results["url_list"][0].as_str().unwrap().to_owned()
}

fn local_path(url: &str) -> PathBuf {
    url::Url::parse(url).unwrap().to_file_path().unwrap()
}

/// The names of the members of a tarball.
fn members(tarball: &Path) -> Vec<String> {
    let output = Command::new("tar")
        .arg("-tf")
        .arg(tarball)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One member's content.
fn member(tarball: &Path, name: &str) -> String {
    let output = Command::new("tar")
        .arg("-xOf")
        .arg(tarball)
        .arg(name)
        .output()
        .unwrap();
    assert!(output.status.success(), "{name} in {}", tarball.display());
    String::from_utf8(output.stdout).unwrap()
}

/// A package whose `postinst` is `script`.
fn hostile_deb(dir: &Path, package: &str, script: &str) -> PathBuf {
    let tree = tempfile::tempdir().unwrap();
    let debian = tree.path().join("DEBIAN");
    std::fs::create_dir_all(&debian).unwrap();
    std::fs::write(
        debian.join("control"),
        format!(
            "Package: {package}\nVersion: 1.0-1\nArchitecture: all\n\
             Maintainer: Tests <tests@example.com>\nDescription: a hostile test package\n"
        ),
    )
    .unwrap();
    std::fs::write(debian.join("postinst"), script).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            debian.join("postinst"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let deb = dir.join(format!("{package}_1.0-1_all.deb"));
    let output = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(tree.path())
        .arg(&deb)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    deb
}

#[tokio::test(flavor = "multi_thread")]
async fn real_images_carry_the_ppas_packages() {
    let rig = rig().await;

    // A base image, made once and then found by its recipe.
    let base = bootstrap(&rig).await;
    assert_eq!(base.state, DoneState::Completed, "{:?}", base.reason);
    assert_eq!(base.results["reused"], false);
    let base_url = first_url(&base);
    assert!(base_url.contains("/images/bookworm-"), "{base_url}");
    let again = bootstrap(&rig).await;
    assert_eq!(again.results["reused"], true);
    assert_eq!(first_url(&again), base_url);
    let base_members = members(&local_path(&base_url));
    assert!(base_members.iter().any(|m| m == "./usr/bin/apt-get"));
    assert!(base_members.iter().any(|m| m == "./usr/bin/gpgv"));

    // A PPA with a new package, and `hello` at versions below the series archive's
    // (bookworm has 2.10-3): the image must carry the PPA's.
    let ppa: PpaName = "ppa:ci-team/ppa_build_1".parse().unwrap();
    let debs = rig.dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let arch = ubuntu_ci_core::archive::host_architecture();
    let mut items = Vec::new();
    // Two versions of hello: the higher in dpkg's order (2.10-1) is pinned, not the first
    // as text (2.10-0+ci9).
    for (package, version) in [
        ("hello-ci", "1.0-1"),
        ("hello", "2.10-1"),
        ("hello", "2.10-0+ci9"),
    ] {
        let control = format!(
            "Package: {package}\nVersion: {version}\nArchitecture: {arch}\n\
             Maintainer: Tests <tests@example.com>\nDescription: a test package\n"
        );
        items.push(Publishable::Deb(build_deb(&debs, &control, "xz")));
    }
    rig.archives.publish(&ppa, None, items).await.unwrap();
    let ticket = rig
        .services
        .tickets
        .create_ticket(NewTicket {
            owner: "dev@example.com".into(),
            title: "image".into(),
            description: String::new(),
            bug_id: String::new(),
        })
        .await
        .unwrap();

    let (done, messages) = build(
        &rig,
        request(
            &base_url,
            &[&ppa.to_string(), "ppa:ci-team/ppa_build_1"],
            &["hello-ci", "hello"],
            Some(ticket.id),
        ),
    )
    .await;
    assert_eq!(done.state, DoneState::Completed, "{:?}", done.reason);
    let phases: Vec<&str> = messages
        .iter()
        .filter_map(|m| match m {
            ProgressMessage::Phase { phase, .. } => Some(phase.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(phases, ["fetch", "prepare", "install", "verify", "store"]);
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, ProgressMessage::Log { log }
            if log.iter().any(|l| l.contains("Unpacking hello-ci (1.0-1)")))),
        "apt's output comes as log batches"
    );
    assert_eq!(done.results["packages"]["hello"], "2.10-1");
    assert_eq!(done.results["packages"]["hello-ci"], "1.0-1");
    let image_url = first_url(&done);
    assert!(
        image_url.contains(&format!("/ticket.{}.images/", ticket.id)),
        "{image_url}"
    );
    let image = local_path(&image_url);
    let image_members = members(&image);
    assert!(image_members
        .iter()
        .any(|m| m == "./usr/share/doc/hello-ci/README"));
    let sources = member(&image, "./etc/apt/sources.list.d/ubuntu-ci.list");
    assert_eq!(
        sources.trim(),
        "deb [signed-by=/etc/apt/keyrings/ubuntu-ci-ci-team.asc] \
         file:/srv/ubuntu-ci-ppa/ci-team/ppa_build_1 bookworm main"
    );
    assert!(!sources.contains("trusted"));
    let key = member(&image, "./etc/apt/keyrings/ubuntu-ci-ci-team.asc");
    assert_eq!(key, rig.archives.public_key("ci-team").await.unwrap());
    assert!(
        !image_members
            .iter()
            .any(|m| m.starts_with("./var/cache/apt/archives/") && m.ends_with(".deb")),
        "apt's cache is cleaned"
    );
    let dpkg_status = member(&image, "./var/lib/dpkg/status");
    assert!(dpkg_status.contains("Package: hello-ci\nStatus: install ok installed"));
    let manifest =
        std::fs::read_to_string(local_path(done.results["manifest"].as_str().unwrap())).unwrap();
    assert!(manifest.contains("hello\t2.10-1\tii"), "{manifest}");
    let description: ubuntu_ci_core::image::rootfs::ImageDescription = serde_json::from_str(
        &std::fs::read_to_string(local_path(&format!("{image_url}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(description.ppa_list, [ppa.to_string()]);
    let artifacts = rig
        .services
        .tickets
        .list_artifacts(
            ArtifactFilter {
                ticket: Some(Uri::new(ticket.id)),
                subticket: None,
                artifact_type: None,
            },
            PageRequest {
                limit: 100,
                offset: 0,
            },
        )
        .await
        .unwrap()
        .objects;
    let kinds: Vec<ArtifactType> = artifacts.iter().map(|a| a.artifact_type).collect();
    assert!(kinds.contains(&ArtifactType::Image), "{kinds:?}");
    assert_eq!(
        artifacts
            .iter()
            .filter(|a| a.artifact_type == ArtifactType::Log)
            .count(),
        2,
        "the log and the manifest"
    );

    // A package that is nowhere: FAILED naming it, with the log kept.
    let (done, _) = build(
        &rig,
        request(
            &base_url,
            &[&ppa.to_string()],
            &["no-such-package-xyz"],
            None,
        ),
    )
    .await;
    assert_eq!(done.state, DoneState::Failed);
    let reason = done.reason.clone().unwrap();
    assert!(reason.contains("no-such-package-xyz"), "{reason}");
    assert!(done.results["log"].as_str().is_some());

    // A package whose maintainer script leaves the chroot and tries to change the shared
    // base tree (by its path, and through every process's folder and root): the build
    // goes on, and the tree, and so the next image, stay as they were.
    let tree = rig
        .dir
        .path()
        .join("data/images/base")
        .join(&description.base_sha256);
    assert!(
        tree.join("usr/bin/apt-get").exists(),
        "the base's tree is cached"
    );
    let postinst = format!(
        r#"#!/usr/bin/perl
mkdir "/tmp/out"; chroot "/tmp/out"; chdir ".." for 1..64; chroot ".";
my @targets = ("{tree}");
push @targets, glob("/proc/[0-9]*/cwd"), glob("/proc/[0-9]*/root{tree}");
for my $dir (@targets) {{
    if (open(my $file, ">", "$dir/usr/ubuntu-ci-poisoned")) {{ print "WROTE $dir\n"; }}
}}
print "hostile script done\n";
"#,
        tree = tree.display()
    );
    let hostile = hostile_deb(&debs, "hostile-ci", &postinst);
    // (A `+` in its name: apt would skip a sources file named after it.)
    let hostile_ppa: PpaName = "ppa:ci-team/ppa+hostile".parse().unwrap();
    rig.archives
        .publish(&hostile_ppa, None, vec![Publishable::Deb(hostile)])
        .await
        .unwrap();
    let (done, messages) = build(
        &rig,
        request(
            &base_url,
            &[&hostile_ppa.to_string()],
            &["hostile-ci"],
            None,
        ),
    )
    .await;
    assert_eq!(done.state, DoneState::Completed, "{:?}", done.reason);
    let log: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            ProgressMessage::Log { log } => Some(log.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        log.iter().any(|l| l.contains("hostile script done")),
        "the maintainer script ran: {log:?}"
    );
    // (What it could write into is its own image: the chroot's processes have it as their
    // folder.)
    assert!(
        !tree.join("usr/ubuntu-ci-poisoned").exists(),
        "the base's tree was changed: {:?}",
        log.iter()
            .filter(|l| l.contains("WROTE"))
            .collect::<Vec<_>>()
    );
    let (done, _) = build(&rig, request(&base_url, &[], &[], None)).await;
    assert_eq!(done.state, DoneState::Completed, "{:?}", done.reason);
    let plain = members(&local_path(&first_url(&done)));
    assert!(!plain.iter().any(|m| m.contains("ubuntu-ci-poisoned")));
    assert!(
        !plain
            .iter()
            .any(|m| m.contains("hello-ci") || m.contains("hostile-ci")),
        "nothing of earlier builds is in an image of the bare base"
    );
    assert!(plain.iter().any(|m| m == "./dev/null"), "/dev is packed");

    // A cancel during the install (a maintainer script that sleeps) ends everything it
    // started, and leaves nothing.
    let slow_ppa: PpaName = "ppa:ci-team/ppa_slow".parse().unwrap();
    let slow = hostile_deb(
        &debs,
        "slow-ci",
        "#!/bin/sh\necho 'slow-ci: sleeping'\nsleep 31337\n",
    );
    rig.archives
        .publish(&slow_ppa, None, vec![Publishable::Deb(slow)])
        .await
        .unwrap();
    let markers = ["ubuntu-ci-image-", "sleep 31337"];
    let cancelled = request(&base_url, &[&slow_ppa.to_string()], &["slow-ci"], None);
    let queue = QueueName::new(cancelled.progress_queue.clone()).unwrap();
    let mut progress = rig.queues.subscribe(&queue, None).await.unwrap();
    let cancel = CancellationToken::new();
    let task = {
        let (builder, cancel) = (rig.builder.clone(), cancel.clone());
        tokio::spawn(async move { builder.build_image(cancelled, cancel).await })
    };
    while let Some(message) = progress.next().await {
        let message = ProgressMessage::from_json(&message.unwrap().body).unwrap();
        if matches!(&message, ProgressMessage::Log { log }
            if log.iter().any(|l| l.contains("slow-ci: sleeping")))
        {
            break;
        }
    }
    assert!(
        !worker_processes(rig.dir.path(), &markers).is_empty(),
        "the build runs"
    );
    cancel.cancel();
    let done = tokio::time::timeout(std::time::Duration::from_secs(60), task)
        .await
        .expect("the cancel ends the image build in time")
        .unwrap()
        .unwrap();
    assert_eq!(done.state, DoneState::Failed);
    assert!(done.reason.unwrap().contains("cancelled"));
    assert!(
        worker_processes(rig.dir.path(), &markers).is_empty(),
        "left: {:?}",
        worker_processes(rig.dir.path(), &markers)
    );
    assert_empty_dir(&rig.dir.path().join("builds"));

    // The same past the time limit.
    let mut options = ImageOptions::new(&rig.dir.path().join("data"));
    options.work_dir = rig.dir.path().join("builds");
    options.timeout = std::time::Duration::from_secs(4);
    let hasty = RootfsImageBuilder::new(
        rig.services.store.clone(),
        None,
        rig.archives.clone(),
        rig.queues.clone(),
        options,
    );
    let started = std::time::Instant::now();
    let done = hasty
        .build_image(
            request(&base_url, &[&slow_ppa.to_string()], &["slow-ci"], None),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.state, DoneState::Failed);
    let reason = done.reason.unwrap();
    assert!(reason.contains("time limit"), "{reason}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(
        worker_processes(rig.dir.path(), &markers).is_empty(),
        "left: {:?}",
        worker_processes(rig.dir.path(), &markers)
    );
    assert_empty_dir(&rig.dir.path().join("builds"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_image_requests_fail_clearly_and_start_nothing() {
    let rig = rig().await;
    let store_url = |name: &str| {
        let store = rig.dir.path().join("data/store/images").join(name);
        url::Url::from_file_path(store).unwrap().to_string()
    };
    let cases: Vec<(BuildImage, &str)> = vec![
        (
            request("http://example.com/base.tar.zst", &[], &["hello"], None),
            "not in the configured data store",
        ),
        (
            request(&store_url("missing.tar.zst"), &[], &["hello"], None),
            "not found",
        ),
        (
            request(&store_url("base.tar.zst"), &[], &["-o", "hello"], None),
            "not a binary package name",
        ),
        (
            request(
                &store_url("base.tar.zst"),
                &["ppa:../etc"],
                &["hello"],
                None,
            ),
            "ppa",
        ),
        (
            {
                let mut r = request(&store_url("base.tar.zst"), &[], &["hello"], None);
                r.base_image.image_type = ImageType::Cloud;
                r
            },
            "CLOUD (qcow2) images are not supported here",
        ),
        (
            {
                let mut r = request(&store_url("base.tar.zst"), &[], &["hello"], None);
                r.base_image.url_list.clear();
                r
            },
            "give one URL",
        ),
    ];
    for (request, expected) in cases {
        let (done, _) = build(&rig, request).await;
        assert_eq!(done.state, DoneState::Failed);
        let reason = done.reason.unwrap();
        assert!(
            reason.to_lowercase().contains(&expected.to_lowercase()),
            "{reason:?} should say {expected:?}"
        );
    }
    assert_empty_dir(&rig.dir.path().join("builds"));
    let err = rig
        .builder
        .build_image(
            {
                let mut r = request(&store_url("base.tar.zst"), &[], &["hello"], None);
                r.progress_queue = "../queue".into();
                r
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ubuntu_ci_core::ErrorKind::InvalidInput);
}
