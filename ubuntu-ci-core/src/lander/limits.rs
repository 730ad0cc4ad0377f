//! How many worker calls of each kind a lander runs at once: a bound per kind (builds,
//! images, tests), first come first served, with the wait kept on the request so that
//! `ticket show` and the API give each waiting ticket's place in line.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// The bounds per kind of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    /// Source builds at once.
    pub builds: usize,
    /// Image builds and bootstraps at once.
    pub images: usize,
    /// Test runs at once.
    pub tests: usize,
    /// Requests holding a PPA at once: the pool's size at most (more would only wait in
    /// the pool, all woken at each release).
    pub ppas: usize,
}

impl StepLimits {
    /// The defaults for a machine with `cores` cores: a build and a test run per core (an
    /// sbuild or autopkgtest run mostly waits on one core's compiler, dpkg or test), an
    /// image build per two cores (packing and compressing a tree takes more), at least one
    /// of each.
    pub fn for_cores(cores: usize) -> StepLimits {
        StepLimits {
            builds: cores.max(1),
            images: (cores / 2).max(1),
            tests: cores.max(1),
            ppas: crate::ppa::PoolOptions::default().max as usize,
        }
    }

    /// The defaults for this machine's cores.
    pub fn for_machine() -> StepLimits {
        StepLimits::for_cores(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

impl Default for StepLimits {
    fn default() -> StepLimits {
        StepLimits::for_machine()
    }
}

/// A kind of work the limits bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    Build,
    Image,
    Test,
}

impl Work {
    /// What a request waiting for this kind waits for.
    pub(crate) fn slot(self) -> &'static str {
        match self {
            Work::Build => "a build slot",
            Work::Image => "an image slot",
            Work::Test => "a test slot",
        }
    }
}

/// One fair semaphore per kind of work (tokio's semaphore serves waiters in order).
#[derive(Debug)]
pub(crate) struct Gates {
    builds: Semaphore,
    images: Semaphore,
    tests: Semaphore,
    ppas: Arc<Semaphore>,
}

impl Gates {
    pub(crate) fn new(limits: StepLimits) -> Gates {
        Gates {
            builds: Semaphore::new(limits.builds.max(1)),
            images: Semaphore::new(limits.images.max(1)),
            tests: Semaphore::new(limits.tests.max(1)),
            ppas: Arc::new(Semaphore::new(limits.ppas.max(1))),
        }
    }

    /// The PPA gate: a permit is held from assignment to release.
    pub(crate) fn ppas(&self) -> Arc<Semaphore> {
        Arc::clone(&self.ppas)
    }

    pub(crate) fn gate(&self, work: Work) -> &Semaphore {
        match work {
            Work::Build => &self.builds,
            Work::Image => &self.images,
            Work::Test => &self.tests,
        }
    }

    /// A slot for `work` at once, when one is free.
    pub(crate) fn try_enter(&self, work: Work) -> Option<SemaphorePermit<'_>> {
        self.gate(work).try_acquire().ok()
    }

    /// A PPA permit at once, when one is free.
    pub(crate) fn try_enter_ppas(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.ppas).try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_cores() {
        assert_eq!(
            StepLimits::for_cores(2),
            StepLimits {
                builds: 2,
                images: 1,
                tests: 2,
                ppas: 16
            }
        );
        assert_eq!(StepLimits::for_cores(0).images, 1);
        assert_eq!(StepLimits::for_cores(8).images, 4);
    }
}
