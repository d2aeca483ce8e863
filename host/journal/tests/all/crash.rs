//! Crash and damage tests of the journal: simulated power loss (writes not
//! synced are dropped), I/O errors that poison the handle, and damaged files.

use std::sync::{Arc, Mutex};

use femtoclaw_journal::{Journal, JournalError, MemoryEffect, RunInfo, RunStatus};
use redb::StorageBackend;
use serde_json::json;

/// A disk that remembers what was synced: `live` is what the process sees,
/// `durable` what survives a power loss.
#[derive(Debug, Default)]
struct Disk {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Writes left before every write and sync fails with EIO.
    fail_after: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct CrashBackend(Arc<Mutex<Disk>>);

impl CrashBackend {
    /// The disk as it is after a power loss now.
    fn power_loss(&self) -> CrashBackend {
        let durable = self.0.lock().unwrap().durable.clone();
        CrashBackend(Arc::new(Mutex::new(Disk {
            live: durable.clone(),
            durable,
            fail_after: None,
        })))
    }

    fn io_check(disk: &mut Disk) -> std::io::Result<()> {
        match &mut disk.fail_after {
            Some(0) => Err(std::io::Error::other("injected EIO")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl StorageBackend for CrashBackend {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.lock().unwrap().live.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let disk = self.0.lock().unwrap();
        let src = disk
            .live
            .get(offset as usize..offset as usize + out.len())
            .ok_or_else(|| std::io::Error::other("out of range"))?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        CrashBackend::io_check(&mut disk)?;
        disk.live.resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        CrashBackend::io_check(&mut disk)?;
        disk.durable = disk.live.clone();
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        CrashBackend::io_check(&mut disk)?;
        let end = offset as usize + data.len();
        if disk.live.len() < end {
            disk.live.resize(end, 0);
        }
        disk.live[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

pub(crate) fn run_info(id: &str) -> RunInfo {
    RunInfo {
        id: id.into(),
        started: 1,
        status: RunStatus::Running,
        agent: "builtin:agent".into(),
        agent_hash: "a".into(),
        policy_hash: "p".into(),
        plan: json!({}),
        outcome: None,
    }
}

#[test]
fn power_loss_keeps_every_synced_event_and_a_valid_chain() {
    // A seeded walk: append events, sync at pseudo-random points, and cut
    // the power after every step; each image must open to a valid prefix
    // that holds everything synced.
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let backend = CrashBackend::default();
    let mut journal = Journal::open_with_backend(backend.clone(), "mem").unwrap();
    journal.create_run(&run_info("r1")).unwrap();
    let mut appended = Vec::new();
    let mut synced = 0;
    for i in 0..120u64 {
        let effect = (i % 7 == 0).then(|| MemoryEffect::Set {
            scope: "agent".into(),
            key: format!("k{i}"),
            value: format!("v{i}"),
        });
        appended.push(
            journal
                .append(
                    "r1",
                    "tool-result",
                    json!({ "i": i, "pad": "x".repeat((next() % 300) as usize) }),
                    effect,
                )
                .unwrap(),
        );
        if next() % 4 == 0 {
            journal.sync().unwrap();
            synced = appended.len();
        }
        let image = backend.power_loss();
        let recovered = Journal::open_with_backend(image, "after power loss").unwrap();
        let events = match recovered.events("r1") {
            Ok(events) => events,
            // A run is durable from its first sync on.
            Err(JournalError::UnknownRun(_)) if synced == 0 => Vec::new(),
            Err(e) => panic!("step {i}: {e}"),
        };
        assert!(
            events.len() >= synced,
            "step {i}: {} events survive, {synced} were synced",
            events.len()
        );
        assert_eq!(
            events[..],
            appended[..events.len()],
            "step {i}: a prefix of what was written, byte for byte"
        );
        let memory = recovered.memory_list("agent", "k").unwrap();
        let expected = (0..events.len() as u64).filter(|j| j % 7 == 0).count();
        assert_eq!(
            memory.len(),
            expected,
            "memory changes commit with their events"
        );
    }
}

#[test]
fn a_failed_commit_poisons_the_handle_and_the_file_recovers() {
    let backend = CrashBackend::default();
    let mut journal = Journal::open_with_backend(backend.clone(), "mem").unwrap();
    journal.create_run(&run_info("r1")).unwrap();
    journal.append("r1", "a", json!(1), None).unwrap();
    journal.sync().unwrap();
    backend.0.lock().unwrap().fail_after = Some(0);
    let first = journal
        .append("r1", "b", json!(2), None)
        .and_then(|_| journal.sync());
    assert!(first.is_err(), "the injected EIO surfaces");
    backend.0.lock().unwrap().fail_after = None;
    // No blind retry: the handle stays unusable even though the disk is fine.
    match journal.append("r1", "c", json!(3), None) {
        Err(JournalError::Poisoned { .. }) => {}
        other => panic!("expected a poisoned handle, got {other:?}"),
    }
    drop(journal);
    let recovered = Journal::open_with_backend(backend.power_loss(), "reopened").unwrap();
    let events = recovered.events("r1").unwrap();
    assert_eq!(events[0].data, json!(1));
    assert!(events.len() <= 2);
}

#[test]
fn damaged_files_give_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    journal.create_run(&run_info("r1")).unwrap();
    for i in 0..200 {
        journal
            .append(
                "r1",
                "x",
                json!({ "i": i, "text": "some payload to fill pages" }),
                None,
            )
            .unwrap();
    }
    journal.sync().unwrap();
    drop(journal);
    let file = dir.path().join(femtoclaw_journal::FILE_NAME);
    let good = std::fs::read(&file).unwrap();
    let mut outcomes = [0usize; 3];
    let damaged_dir = tempfile::tempdir().unwrap();
    let target = damaged_dir.path().join(femtoclaw_journal::FILE_NAME);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for cut in [0, 7, 100, 512, 4096, good.len() / 2, good.len() - 1] {
        cases.push(good[..cut].to_vec());
    }
    for offset in (0..good.len()).step_by(good.len() / 97 + 1) {
        let mut bytes = good.clone();
        bytes[offset] ^= 0xff;
        cases.push(bytes);
    }
    for bytes in cases {
        std::fs::write(&target, &bytes).unwrap();
        match Journal::open(damaged_dir.path()) {
            Err(e) => {
                assert!(e.to_string().contains("journal.redb"), "{e}");
                outcomes[0] += 1;
            }
            Ok(journal) => match journal.events("r1") {
                // Damage in unused space, or repaired by redb: the data is intact.
                Ok(events) => {
                    assert!(events.iter().enumerate().all(|(i, e)| e.data["i"] == i));
                    outcomes[1] += 1;
                }
                Err(_) => outcomes[2] += 1,
            },
        }
    }
    assert!(
        outcomes[0] > 0,
        "some damage is detected at open: {outcomes:?}"
    );
}
