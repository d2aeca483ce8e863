//! Replay is deterministic: the same journal gives the same answer and the
//! same steps, a hundred times in a row.

use femtoclaw_runtime::prelude::*;

use crate::common::*;

#[test]
fn replay_reproduces_a_run_100_times() {
    let state = fresh_dir();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new().unwrap();
    tokio.block_on(async {
        let mut plan = RunPlan::new(
            Policy::load("examples/hello/policy.toml").unwrap(),
            "What is in /data?",
        );
        plan.state = Some(state.clone());
        let original = runtime.run(plan).await.unwrap();
        for i in 0..100 {
            let replay = runtime
                .replay(&state, &original.run_id, None)
                .await
                .unwrap();
            assert_eq!(replay.answer, original.answer, "replay {i}");
            assert_eq!(replay.stats, original.stats, "replay {i}");
        }
    });
}
