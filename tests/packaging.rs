//! The Dockerfile installs its packages from the same lists as scripts/install-deps.sh.
//! (No Docker engine runs here, so the image itself is not built by the tests.)

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn packages(list: &str) -> Vec<String> {
    read(list)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn dockerfile_installs_the_install_scripts_package_lists() {
    let dockerfile = read("Dockerfile");
    let installer = read("scripts/install-deps.sh");
    assert!(
        installer.contains("scripts/deps/*.txt"),
        "install-deps.sh reads every list"
    );
    for list in ["scripts/deps/build.txt", "scripts/deps/runtime.txt"] {
        let name = list.rsplit('/').next().unwrap();
        assert!(dockerfile.contains(name), "Dockerfile installs {list}");
        let pkgs = packages(list);
        assert!(!pkgs.is_empty(), "{list} lists packages");
        for pkg in pkgs {
            assert!(
                !dockerfile.contains(&format!(" {pkg} ")),
                "{pkg} is hard-coded in the Dockerfile instead of read from {list}"
            );
        }
    }
    let runtime = packages("scripts/deps/runtime.txt");
    for needed in [
        "gstreamer1.0-plugins-good",
        "gstreamer1.0-plugins-bad",
        "gstreamer1.0-plugins-ugly",
    ] {
        assert!(
            runtime.iter().any(|p| p == needed),
            "runtime image needs {needed}"
        );
    }
}

#[test]
fn dockerfile_runs_as_non_root_with_volume_and_ports() {
    let dockerfile = read("Dockerfile");
    for line in [
        "USER capstan",
        "VOLUME /var/lib/capstan",
        "EXPOSE 8080/tcp 50000-50199/udp",
        "ENTRYPOINT [\"/usr/local/bin/capstan\"]",
        "CMD [\"serve\"]",
    ] {
        assert!(dockerfile.contains(line), "Dockerfile lacks `{line}`");
    }
    assert!(
        dockerfile.contains("FROM debian:bookworm-slim"),
        "slim runtime stage"
    );
}
