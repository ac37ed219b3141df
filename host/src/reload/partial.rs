//! A rollback of one tenant's file: when a reload changed several parts of the configuration
//! (the config file itself, tenants' files) and only some tenants' new routes fault, those
//! tenants alone get their previous file back; every other change stays published.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::Config;
use crate::generation::{Generation, Modules};

/// What a partial rollback publishes: the faulting generation's configuration with the
/// faulting tenants' files as they were, and the modules to build it with.
#[derive(Debug)]
pub(super) struct Plan {
    /// The tenants put back.
    pub tenants: Vec<String>,
    /// The configuration to publish.
    pub config: Config,
    /// The running modules, and the previous ones of the tenants' routes.
    pub modules: Modules,
}

/// The tenants whose files alone a rollback of `bad` to `previous` (the configuration before
/// it) puts back, if that is the rollback to make: every node that faulted is in a tenant's
/// file, each such file changed in the reload, and something else changed too (if not, a
/// whole rollback is the same thing, and ready sooner). Compares texts only: a worker asks it
/// at a fault.
pub(super) fn tenants(bad: &Generation, old: &Config) -> Option<Vec<String>> {
    let mut tenants: Vec<String> = Vec::new();
    for node in &bad.nodes {
        if node.stats.faults() == node.faults_before {
            continue;
        }
        // A fault outside every tenant's file: the whole configuration goes back.
        let tenant = node.context.file_tenant.as_ref()?;
        if !tenants.contains(tenant) {
            tenants.push(tenant.clone());
        }
    }
    if tenants.is_empty() {
        return None;
    }
    let new = &bad.config;
    for tenant in &tenants {
        let (now, before) = (include(new, tenant)?, include(old, tenant)?);
        if before.text == now.text {
            // Its file did not change: the faults come from something else.
            return None;
        }
    }
    let others_changed = main_text(old) != main_text(new)
        || new.includes.iter().any(|i| {
            !tenants.contains(&i.tenant)
                && include(old, &i.tenant).is_none_or(|before| before.text != i.text)
        });
    others_changed.then_some(tenants)
}

/// The partial rollback of `bad` to `previous` (the configuration before it, with its
/// modules), if [`tenants`] says there is one.
pub(super) fn plan(bad: &Generation, previous: &(Config, Modules)) -> Option<Plan> {
    let (old, old_modules) = previous;
    let tenants = self::tenants(bad, old)?;
    let new = &bad.config;
    let mut kept: BTreeMap<PathBuf, String> = new
        .includes
        .iter()
        .map(|i| (i.path.clone(), i.text.clone()))
        .collect();
    for tenant in &tenants {
        let (now, before) = (include(new, tenant)?, include(old, tenant)?);
        kept.insert(now.path.clone(), before.text.clone());
    }
    let config = Config::from_parts(main_text(new), &new.origin, &kept).ok()?;
    // What runs now, but the tenants' routes as they ran before the reload.
    let mut modules = bad.modules.clone();
    for route in &old.routes {
        if old
            .locate(route.line)
            .2
            .is_some_and(|t| tenants.iter().any(|n| n == t))
            && let Some(module) = old_modules.get(&route.plugin)
        {
            modules.insert(route.plugin.clone(), module.clone());
        }
    }
    Some(Plan {
        tenants,
        config,
        modules,
    })
}

/// `tenant`'s file in `config`.
fn include<'c>(config: &'c Config, tenant: &str) -> Option<&'c crate::config::Include> {
    config.includes.iter().find(|i| i.tenant == tenant)
}

/// The config file's own text, without the tenants' files appended to it.
fn main_text(config: &Config) -> &str {
    let text = &*config.text;
    let Some(first) = config.includes.first() else {
        return text;
    };
    let end = text
        .match_indices('\n')
        .nth(first.first_line.saturating_sub(2))
        .map_or(text.len(), |(at, _)| at + 1);
    &text[..end]
}
