//! `navigator org list` and `navigator org switch NAME` (also as the kubectl plugin `kubectl navigator org …`):
//! the organisations (provider, customer, distributor, reseller) in which the current kubeconfig user holds a
//! role, and switching between them by setting the current context's namespace.
//!
//! Everything is asked of the API server as the user: which namespaces they may see (the directory entry an
//! AccessGrant creates lets them `get` exactly those; someone allowed to list namespaces sees Navigator's
//! labelled ones), and in each, which catalogue roles they hold (the roles' `hold` marker rule, read with a
//! SelfSubjectRulesReview). Nothing is cached or guessed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use k8s_openapi::api::authorization::v1::{ResourceRule, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};

use crate::controllers::namespaces::{CUSTOMER_ORG_LABEL, MANAGED_BY, PROVIDER_NAMESPACE_LABEL, PROVIDER_ORG_LABEL};

use crate::api::GROUP;

/// `navigator org …`
#[derive(clap::Subcommand, Debug)]
pub enum OrgCommand {
    /// List the organisations in which you hold a role: their namespace, type, name and your roles there.
    List,
    /// Make an organisation current: sets the current kubeconfig context's namespace to it. NAME is the
    /// namespace or the organisation as `navigator org list` shows them.
    Switch {
        /// The organisation's namespace (e.g. `acme-cloud-globex`) or name (e.g. `acme-cloud/globex`).
        name: String,
    },
}

/// What kind of organisation a namespace is, as far as the user's roles there tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OrgType {
    Provider,
    Distributor,
    Reseller,
    Customer,
}

/// One organisation the user holds a role in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    /// The namespace: what `switch` makes current.
    pub namespace: String,
    /// `acme-cloud` for a provider, `acme-cloud/globex` for a customer of it.
    pub name: String,
    pub types: Vec<OrgType>,
    /// Catalogue roles held there (`*` when the user may do anything, like a cluster administrator).
    pub roles: Vec<String>,
}

fn covers(list: &[String], wanted: &str) -> bool {
    list.iter().any(|v| v == wanted || v == "*")
}

fn rule_matches(rule: &ResourceRule, group: &str, resource: &str, verb: &str) -> bool {
    covers(rule.api_groups.as_deref().unwrap_or_default(), group)
        && covers(rule.resources.as_deref().unwrap_or_default(), resource)
        && covers(&rule.verbs, verb)
}

/// The names a set of rules allows `verb` on for `resource`; `None` when any name is allowed.
fn allowed_names(rules: &[ResourceRule], group: &str, resource: &str, verb: &str) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for rule in rules.iter().filter(|r| rule_matches(r, group, resource, verb)) {
        match rule.resource_names.as_deref() {
            None | Some([]) => return None,
            Some(some) => names.extend(some.iter().cloned()),
        }
    }
    Some(names)
}

/// The catalogue roles the rules of one namespace show (through each role's `hold` marker).
pub fn roles_held(rules: &[ResourceRule]) -> Vec<String> {
    match allowed_names(rules, GROUP, "roles", "hold") {
        None => vec!["*".into()],
        Some(names) => names.into_iter().collect(),
    }
}

/// The organisation a namespace is, from Navigator's labels on it and the roles held there.
pub fn org_of(namespace: &Namespace, roles: Vec<String>) -> Option<Org> {
    let labels = namespace.metadata.labels.clone().unwrap_or_default();
    let name = namespace.metadata.name.clone()?;
    if labels.get(MANAGED_BY).map(String::as_str) != Some("navigator") || roles.is_empty() {
        return None;
    }
    let (org_name, types) = if let (Some(customer), Some(provider)) =
        (labels.get(CUSTOMER_ORG_LABEL), labels.get(PROVIDER_NAMESPACE_LABEL))
    {
        (format!("{provider}/{customer}"), vec![OrgType::Customer])
    } else if let Some(provider) = labels.get(PROVIDER_ORG_LABEL) {
        let mut types: BTreeSet<OrgType> = roles
            .iter()
            .filter_map(|r| match r {
                r if r.starts_with("Distributor") => Some(OrgType::Distributor),
                r if r.starts_with("Reseller") => Some(OrgType::Reseller),
                r if r.starts_with("Provider") || r == "*" => Some(OrgType::Provider),
                _ => None,
            })
            .collect();
        if types.is_empty() {
            types.insert(OrgType::Provider);
        }
        (provider.clone(), types.into_iter().collect())
    } else {
        return None;
    };
    Some(Org {
        namespace: name,
        name: org_name,
        types,
        roles,
    })
}

async fn rules_in(client: &kube::Client, namespace: &str) -> anyhow::Result<Vec<ResourceRule>> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectRulesReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .with_context(|| format!("asking the API server which rules you hold in namespace {namespace}"))?;
    Ok(answer.status.map(|s| s.resource_rules).unwrap_or_default())
}

/// Every organisation the client's user holds a role in, sorted by namespace. `here` is any namespace to
/// read cluster-wide rules in (the current context's).
pub async fn discover(client: &kube::Client, here: &str) -> anyhow::Result<Vec<Org>> {
    let namespaces = Api::<Namespace>::all(client.clone());
    let visible = allowed_names(&rules_in(client, here).await?, "", "namespaces", "get");
    let candidates: Vec<Namespace> = match visible {
        // May read any namespace: Navigator's are labelled.
        None => {
            let params = ListParams::default().labels(&format!("{MANAGED_BY}=navigator"));
            namespaces
                .list(&params)
                .await
                .context("listing Navigator's namespaces")?
                .items
        }
        Some(names) => {
            let mut found = Vec::new();
            for name in names {
                if let Some(namespace) = namespaces.get_opt(&name).await.ok().flatten() {
                    found.push(namespace);
                }
            }
            found
        }
    };
    let mut orgs = Vec::new();
    for namespace in candidates {
        let Some(name) = namespace.metadata.name.clone() else {
            continue;
        };
        let roles = roles_held(&rules_in(client, &name).await?);
        orgs.extend(org_of(&namespace, roles));
    }
    orgs.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Ok(orgs)
}

/// The table `navigator org list` prints; `current` is marked with `*`.
pub fn table(orgs: &[Org], current: &str) -> String {
    let rows: Vec<[String; 5]> = orgs
        .iter()
        .map(|o| {
            let types: Vec<String> = o.types.iter().map(|t| format!("{t:?}")).collect();
            [
                if o.namespace == current { "*" } else { "" }.to_string(),
                o.namespace.clone(),
                types.join(","),
                o.name.clone(),
                o.roles.join(","),
            ]
        })
        .collect();
    let header = ["CURRENT", "NAMESPACE", "TYPE", "ORGANISATION", "ROLES"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            cells.join("   ").trim_end().to_string() + "\n"
        })
        .collect()
}

/// The organisation `name` designates: by namespace, else by organisation name.
pub fn find<'a>(orgs: &'a [Org], name: &str) -> Option<&'a Org> {
    orgs.iter()
        .find(|o| o.namespace == name)
        .or_else(|| orgs.iter().find(|o| o.name == name))
}

/// The kubeconfig files in force, as kubectl reads them: `$KUBECONFIG` (a `:`-separated list), else
/// `~/.kube/config`.
fn kubeconfig_files() -> Vec<PathBuf> {
    match std::env::var_os("KUBECONFIG") {
        Some(list) if !list.is_empty() => std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        _ => std::env::var_os("HOME")
            .map(|home| vec![PathBuf::from(home).join(".kube/config")])
            .unwrap_or_default(),
    }
}

/// Sets `namespace` on the current context of a kubeconfig document; returns the context's name, or `None`
/// when this document does not define the current context.
pub fn set_namespace(doc: &mut serde_yaml::Value, current: &str, namespace: &str) -> Option<()> {
    let contexts = doc.get_mut("contexts")?.as_sequence_mut()?;
    let entry = contexts
        .iter_mut()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(current))?;
    let context = entry.get_mut("context")?.as_mapping_mut()?;
    context.insert("namespace".into(), namespace.into());
    Some(())
}

/// Sets the namespace of the current context in the kubeconfig file that defines it (as `kubectl config
/// set-context --current --namespace` does); answers the context's name.
fn switch_namespace(namespace: &str) -> anyhow::Result<String> {
    let files = kubeconfig_files();
    let mut docs = Vec::new();
    for path in &files {
        if let Ok(text) = std::fs::read_to_string(path) {
            let doc: serde_yaml::Value =
                serde_yaml::from_str(&text).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            docs.push((path.clone(), doc));
        }
    }
    let current = docs
        .iter()
        .find_map(|(_, d)| {
            d.get("current-context")?
                .as_str()
                .filter(|c| !c.is_empty())
                .map(String::from)
        })
        .context("the kubeconfig has no current context; choose one with kubectl config use-context")?;
    for (path, doc) in &mut docs {
        if set_namespace(doc, &current, namespace).is_some() {
            let text = serde_yaml::to_string(doc)?;
            std::fs::write(&*path, text).with_context(|| format!("writing kubeconfig {}", path.display()))?;
            return Ok(current);
        }
    }
    bail!("no kubeconfig file defines the current context {current}")
}

/// Runs `navigator org …`, printing to `out`.
pub async fn run(command: OrgCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let config = kube::Config::infer()
        .await
        .context("reading the kubeconfig (KUBECONFIG or ~/.kube/config)")?;
    let current = config.default_namespace.clone();
    let client = kube::Client::try_from(config)?;
    let orgs = discover(&client, &current).await?;
    match command {
        OrgCommand::List => {
            if orgs.is_empty() {
                writeln!(out, "You hold no role in any Navigator organisation.")?;
            } else {
                write!(out, "{}", table(&orgs, &current))?;
            }
        }
        OrgCommand::Switch { name } => {
            let Some(org) = find(&orgs, &name) else {
                bail!("you hold no role in an organisation named {name}; `navigator org list` shows those you do");
            };
            let context = switch_namespace(&org.namespace)?;
            writeln!(
                out,
                "Switched to {} ({}): context {context} now uses namespace {}.",
                org.name,
                org.types.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(","),
                org.namespace
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> ResourceRule {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        ResourceRule {
            api_groups: strings(groups),
            resources: strings(resources),
            resource_names: if names.is_empty() { None } else { strings(names) },
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.into());
        ns.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        ns
    }

    #[test]
    fn roles_are_read_from_the_hold_markers_and_a_wildcard_holds_everything() {
        let rules = vec![
            rule(&[GROUP], &["roles"], &["ProviderBillingUser"], &["hold"]),
            rule(&[GROUP], &["invoices"], &[], &["get", "list"]),
            rule(&[GROUP], &["roles"], &["CustomerAdministrator"], &["hold"]),
        ];
        assert_eq!(roles_held(&rules), vec!["CustomerAdministrator", "ProviderBillingUser"]);
        assert_eq!(roles_held(&[rule(&["*"], &["*"], &[], &["*"])]), vec!["*"]);
        assert!(roles_held(&[rule(&[GROUP], &["invoices"], &[], &["get"])]).is_empty());
    }

    #[test]
    fn visible_namespaces_come_from_named_get_rules_or_any_when_unrestricted() {
        let rules = vec![
            rule(&[""], &["namespaces"], &["acme"], &["get"]),
            rule(&[""], &["namespaces"], &["acme-globex"], &["get"]),
            rule(&[""], &["pods"], &[], &["get"]),
        ];
        let names = allowed_names(&rules, "", "namespaces", "get").unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["acme", "acme-globex"]);
        assert_eq!(
            allowed_names(&[rule(&["*"], &["*"], &[], &["*"])], "", "namespaces", "get"),
            None
        );
    }

    #[test]
    fn namespaces_become_organisations_by_their_labels() {
        let provider = namespace("acme", &[(MANAGED_BY, "navigator"), (PROVIDER_ORG_LABEL, "acme-cloud")]);
        let org = org_of(&provider, vec!["ProviderBillingUser".into(), "DistributorUser".into()]).unwrap();
        assert_eq!(org.name, "acme-cloud");
        assert_eq!(org.types, vec![OrgType::Provider, OrgType::Distributor]);
        let customer = namespace(
            "acme-globex",
            &[
                (MANAGED_BY, "navigator"),
                (CUSTOMER_ORG_LABEL, "globex"),
                (PROVIDER_NAMESPACE_LABEL, "acme"),
            ],
        );
        let org = org_of(&customer, vec!["CustomerAdministrator".into()]).unwrap();
        assert_eq!(
            (org.name.as_str(), org.types.as_slice()),
            ("acme/globex", &[OrgType::Customer][..])
        );
        assert_eq!(org_of(&customer, vec![]), None, "no role held: not listed");
        let foreign = namespace("payments", &[]);
        assert_eq!(org_of(&foreign, vec!["*".into()]), None, "not Navigator's");
    }

    #[test]
    fn the_table_marks_the_current_organisation_and_switch_finds_by_namespace_or_name() {
        let orgs = vec![
            Org {
                namespace: "acme".into(),
                name: "acme-cloud".into(),
                types: vec![OrgType::Provider],
                roles: vec!["ProviderBillingUser".into()],
            },
            Org {
                namespace: "acme-globex".into(),
                name: "acme/globex".into(),
                types: vec![OrgType::Customer],
                roles: vec!["CustomerAdministrator".into()],
            },
        ];
        let text = table(&orgs, "acme-globex");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CURRENT   NAMESPACE"), "{text}");
        assert!(lines[2].starts_with("*         acme-globex   Customer"), "{text}");
        assert_eq!(
            find(&orgs, "acme/globex").map(|o| o.namespace.as_str()),
            Some("acme-globex")
        );
        assert_eq!(find(&orgs, "acme").map(|o| o.name.as_str()), Some("acme-cloud"));
        assert!(find(&orgs, "initech").is_none());
    }

    #[test]
    fn switching_sets_the_namespace_of_the_current_context_only() {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(
            "contexts:\n- name: a\n  context: {cluster: c, user: u, namespace: default}\n- name: b\n  context: {cluster: c, user: v}\ncurrent-context: b\n",
        )
        .unwrap();
        assert_eq!(set_namespace(&mut doc, "b", "acme"), Some(()));
        assert_eq!(doc["contexts"][1]["context"]["namespace"], "acme");
        assert_eq!(doc["contexts"][0]["context"]["namespace"], "default");
        assert_eq!(set_namespace(&mut doc, "missing", "acme"), None);
    }
}
