//! Which connection attempts the server takes on: at most
//! `connections_per_address` from one IP address and `connections` in total,
//! counted from the first packet (a half-open handshake counts) until the
//! connection's task ends. A refusal is logged once per address until that
//! address has no connection left, so a flood writes one line, not one per attempt.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Limits;

/// Addresses remembered as already warned about; beyond this the memory is reset
/// (a flood from many addresses then logs again, which is bounded and honest).
const WARNED_ADDRESSES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{limit} connections from this address are open already ([limits] connections_per_address)")]
    PerAddress { limit: u32 },
    #[error("{limit} connections are open already ([limits] connections)")]
    Total { limit: u32 },
}

/// A refused attempt, and whether it is the first one from its address worth a warning.
pub struct Refused {
    pub reason: Refusal,
    pub first: bool,
}

pub struct Admission {
    limits: Limits,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    per_address: HashMap<IpAddr, u32>,
    total: u32,
    warned: HashSet<IpAddr>,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Counters stay consistent even if a holder panicked: every update is one statement.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admitted, Refused> {
        let mut counts = self.lock();
        let from_address = counts.per_address.get(&address).copied().unwrap_or(0);
        let reason = if from_address >= self.limits.connections_per_address {
            Some(Refusal::PerAddress {
                limit: self.limits.connections_per_address,
            })
        } else if counts.total >= self.limits.connections {
            Some(Refusal::Total {
                limit: self.limits.connections,
            })
        } else {
            None
        };
        if let Some(reason) = reason {
            if counts.warned.len() >= WARNED_ADDRESSES {
                counts.warned.clear();
            }
            let first = counts.warned.insert(address);
            return Err(Refused { reason, first });
        }
        *counts.per_address.entry(address).or_default() += 1;
        counts.total += 1;
        Ok(Admitted {
            admission: self.clone(),
            address,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.per_address.remove(&self.address);
                // The next episode of refusals from this address is worth a line again.
                counts.warned.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: u32, total: u32) -> Limits {
        Limits {
            connections_per_address: per_address,
            connections: total,
            ..Limits::default()
        }
    }

    #[test]
    fn each_address_gets_its_share_and_refusals_warn_once() {
        let admission = Admission::new(limits(2, 10));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admission.admit(a).ok().unwrap();
        let _second = admission.admit(a).ok().unwrap();
        let refused = admission.admit(a).err().unwrap();
        assert_eq!(refused.reason, Refusal::PerAddress { limit: 2 });
        assert!(refused.first);
        assert!(!admission.admit(a).err().unwrap().first, "one warning per episode");
        assert!(admission.admit(b).is_ok(), "another address is not affected");

        drop(first);
        let again = admission.admit(a);
        assert!(again.is_ok(), "a freed place is taken again");
    }

    #[test]
    fn the_total_holds_across_addresses_and_is_freed_on_drop() {
        let admission = Admission::new(limits(8, 2));
        let held: Vec<_> = (1..=2u8)
            .map(|i| admission.admit([10, 0, 0, i].into()).ok().unwrap())
            .collect();
        let refused = admission.admit([10, 0, 0, 3].into()).err().unwrap();
        assert_eq!(refused.reason, Refusal::Total { limit: 2 });
        drop(held);
        let _third = admission.admit([10, 0, 0, 3].into()).ok().unwrap();
        assert_eq!(admission.lock().total, 1);
        assert_eq!(admission.lock().per_address.len(), 1);
    }
}
