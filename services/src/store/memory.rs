//! The in-memory backend: the same operations as the SQL one, on maps behind one lock.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use vproto_api::{DiscoveryState, Endpoint, HardwareList};

use super::{AgentRecord, DiscoveryRun, Hello, Millis};

/// Agents and discovery runs, in memory.
#[derive(Default)]
pub struct Memory {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    agents: BTreeMap<Endpoint, AgentRecord>,
    runs: BTreeMap<i64, DiscoveryRun>,
    next_run: i64,
}

impl Memory {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn hello(&self, hello: &Hello) -> Option<AgentRecord> {
        let mut state = self.lock();
        let previous = state.agents.get(&hello.endpoint).cloned();
        state.agents.insert(hello.endpoint.clone(), hello.applied(previous.as_ref()));
        previous
    }

    pub(super) fn agents(&self) -> Vec<AgentRecord> {
        self.lock().agents.values().cloned().collect()
    }

    pub(super) fn mark_missing(&self, now: Millis) -> Vec<AgentRecord> {
        let mut state = self.lock();
        let mut flagged = Vec::new();
        for record in state.agents.values_mut() {
            if !record.missing && record.deadline() < now {
                record.missing = true;
                flagged.push(record.clone());
            }
        }
        flagged
    }

    pub(super) fn next_deadline(&self) -> Option<Millis> {
        self.lock().agents.values().filter(|record| !record.missing).map(AgentRecord::deadline).min()
    }

    pub(super) fn set_hardware(&self, endpoint: &Endpoint, hardware: &HardwareList) -> bool {
        match self.lock().agents.get_mut(endpoint) {
            Some(record) => {
                record.hardware = Some(Arc::new(hardware.clone()));
                true
            }
            None => false,
        }
    }

    pub(super) fn deregister(&self, endpoint: &Endpoint) -> bool {
        let mut state = self.lock();
        state.runs.retain(|_, run| run.agent != *endpoint);
        state.agents.remove(endpoint).is_some()
    }

    pub(super) fn discovery_started(
        &self,
        agent: &Endpoint,
        state: &DiscoveryState,
        started: Millis,
        finished: Option<Millis>,
    ) -> i64 {
        let mut locked = self.lock();
        locked.next_run += 1;
        let id = locked.next_run;
        locked.runs.insert(id, DiscoveryRun { id, agent: agent.clone(), state: state.clone(), started, finished });
        id
    }

    pub(super) fn discovery_ended(&self, id: i64, state: &DiscoveryState, at: Millis) {
        if let Some(run) = self.lock().runs.get_mut(&id) {
            run.state = state.clone();
            run.finished = Some(at);
        }
    }

    pub(super) fn latest_discoveries(&self) -> Vec<DiscoveryRun> {
        let state = self.lock();
        let mut latest: BTreeMap<&Endpoint, &DiscoveryRun> = BTreeMap::new();
        for run in state.runs.values() {
            latest.insert(&run.agent, run);
        }
        latest.into_values().cloned().collect()
    }
}
