//! `navigator invoice export` and `navigator usage report`: Invoices as CSV or JSON, and a usage report as
//! CSV, for people and spreadsheets.
//!
//! Both read Invoice resources as the current kubeconfig user and need nothing but read access: `get` and
//! `list` on invoices in the namespaces exported. For `--provider-namespace` the customer namespaces are
//! found from the provider's CustomerOrgs, or, for someone who may not read those (a Provider Billing
//! User), from the organisations they hold a role in (as `navigator org list` finds them).
//!
//! The usage report is made from the invoices' line items, not read from the endpoints: reading the meter
//! would need the endpoint's credentials, which only the operator holds. So it covers invoiced (closed)
//! periods; the current period's usage is in the ProviderOrg's status.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::api::customer_org::customer_namespace;
use crate::api::{CustomerOrg, Invoice};
use crate::billing::{self, period_label};

/// `navigator invoice …`
#[derive(clap::Subcommand, Debug)]
pub enum InvoiceCommand {
    /// Export invoices as CSV (one row per line item) or JSON, from a customer namespace, every customer of
    /// a provider, or the whole cluster, optionally for one billing period.
    Export(ExportArgs),
    /// Write one invoice as a PDF or HTML document, with the provider's and customer's names, the period,
    /// the line items, subtotal, tax and total; the same bytes on every run.
    Render(crate::cli::render::RenderArgs),
}

/// `navigator usage …`
#[derive(clap::Subcommand, Debug)]
pub enum UsageCommand {
    /// A CSV usage report (service, metric, customer, quantity, unit, unit price, amount, currency, period)
    /// made from the invoices selected as for `navigator invoice export`.
    Report(Selection),
}

/// The output format of `navigator invoice export`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// `csv` (RFC 4180, one row per line item) or `json` (an array of invoices, decimals as strings).
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
}

/// Which invoices, and where the output goes.
#[derive(clap::Args, Debug)]
pub struct Selection {
    /// A customer namespace (`<provider namespace>-<customer>`). Default: the current context's namespace.
    #[arg(short, long, conflicts_with_all = ["provider_namespace", "all_namespaces"])]
    pub namespace: Option<String>,
    /// A provider namespace: the invoices of every customer of that provider.
    #[arg(long, conflicts_with = "all_namespaces")]
    pub provider_namespace: Option<String>,
    /// Every invoice in the cluster (needs cluster-wide list access to invoices).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only this billing period, as invoices are labelled: `2026-10` (periods starting on the 1st) or
    /// `2026-10-15` (periods starting on another day).
    #[arg(long, value_parser = parse_period)]
    pub period: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Accepts `YYYY-MM` or `YYYY-MM-DD` (a period's first day), as [`period_label`] writes them.
fn parse_period(text: &str) -> Result<String, String> {
    let date = if text.len() == 7 {
        format!("{text}-01")
    } else {
        text.to_owned()
    };
    let start: jiff::civil::Date = date
        .parse()
        .map_err(|_| format!("{text:?} is not a billing period: write 2026-10 or 2026-10-15"))?;
    let label = period_label(start);
    if label != text {
        return Err(format!("{text:?} is not a billing period label: did you mean {label}?"));
    }
    Ok(label)
}

/// Where to look for invoices.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    Namespace(String),
    Provider(String),
    All,
}

fn scope(selection: &Selection, default_namespace: &str) -> Scope {
    if selection.all_namespaces {
        Scope::All
    } else if let Some(provider) = &selection.provider_namespace {
        Scope::Provider(provider.clone())
    } else {
        Scope::Namespace(
            selection
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_owned()),
        )
    }
}

/// Whether the invoice is of `period` (a label), when one is asked for.
fn in_period(invoice: &Invoice, period: Option<&str>) -> bool {
    period.is_none_or(|p| period_label(invoice.spec.period_start) == p)
}

/// The selected invoices, sorted by namespace, period and name.
pub async fn select(client: &kube::Client, selection: &Selection) -> anyhow::Result<Vec<Invoice>> {
    let scope = scope(selection, client.default_namespace());
    let namespaces = match &scope {
        Scope::All => None,
        Scope::Namespace(namespace) => Some(vec![namespace.clone()]),
        Scope::Provider(provider) => Some(customer_namespaces(client, provider).await?),
    };
    let mut invoices = Vec::new();
    match namespaces {
        None => invoices.extend(
            Api::<Invoice>::all(client.clone())
                .list(&ListParams::default())
                .await
                .context("listing invoices in every namespace")?,
        ),
        Some(namespaces) => {
            for namespace in namespaces {
                let listed = Api::<Invoice>::namespaced(client.clone(), &namespace)
                    .list(&ListParams::default())
                    .await
                    .with_context(|| format!("listing invoices in namespace {namespace}"))?;
                invoices.extend(listed);
            }
        }
    }
    invoices.retain(|i| in_period(i, selection.period.as_deref()));
    invoices.sort_by(|a, b| {
        (a.namespace(), a.spec.period_start, a.name_any()).cmp(&(b.namespace(), b.spec.period_start, b.name_any()))
    });
    Ok(invoices)
}

/// The customer namespaces of the provider whose namespace is `provider`.
async fn customer_namespaces(client: &kube::Client, provider: &str) -> anyhow::Result<Vec<String>> {
    match Api::<CustomerOrg>::namespaced(client.clone(), provider)
        .list(&ListParams::default())
        .await
    {
        Ok(customers) => Ok(customers
            .iter()
            .map(|c| customer_namespace(provider, &c.name_any()))
            .collect()),
        // May not read customers (a billing user): the customer organisations one holds a role in.
        Err(kube::Error::Api(status)) if status.code == 403 => {
            let prefix = format!("{provider}/");
            let orgs = crate::cli::org::discover(client, provider)
                .await
                .context("finding the customer namespaces you may read")?;
            let found: Vec<String> = orgs
                .into_iter()
                .filter(|o| o.name.starts_with(&prefix) && o.types.contains(&crate::cli::org::OrgType::Customer))
                .map(|o| o.namespace)
                .collect();
            if found.is_empty() {
                bail!("you may not list CustomerOrgs in {provider} and hold no role in any of its customer namespaces");
            }
            Ok(found)
        }
        Err(error) => Err(error).with_context(|| format!("listing the CustomerOrgs in namespace {provider}")),
    }
}

fn write_output(selection: &Selection, text: &str, out: &mut impl Write) -> anyhow::Result<()> {
    match &selection.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("writing {}", path.display())),
        None => out.write_all(text.as_bytes()).context("writing the export"),
    }
}

/// `navigator invoice …`, writing to `out` unless `--output` names a file.
pub async fn run_invoice(command: InvoiceCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let args = match command {
        InvoiceCommand::Export(args) => args,
        InvoiceCommand::Render(args) => return crate::cli::render::run(args).await,
    };
    let client = kube::Client::try_default().await.context("reading the kubeconfig")?;
    let invoices = select(&client, &args.selection).await?;
    let text = match args.format {
        Format::Csv => billing::invoices_csv(&invoices)?,
        Format::Json => billing::invoices_json(&invoices)? + "\n",
    };
    write_output(&args.selection, &text, out)
}

/// `navigator usage …`, writing to `out` unless `--output` names a file.
pub async fn run_usage(command: UsageCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let UsageCommand::Report(selection) = command;
    let client = kube::Client::try_default().await.context("reading the kubeconfig")?;
    let invoices = select(&client, &selection).await?;
    write_output(&selection, &billing::usage_report_csv(&invoices)?, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        invoice: InvoiceCommand,
    }

    fn parse(args: &[&str]) -> Result<ExportArgs, clap::Error> {
        let mut argv = vec!["navigator", "export"];
        argv.extend(args);
        Cli::try_parse_from(argv).map(|c| match c.invoice {
            InvoiceCommand::Export(args) => args,
            InvoiceCommand::Render(_) => unreachable!("parsed as export"),
        })
    }

    #[test]
    fn periods_are_written_as_invoices_label_them() {
        assert_eq!(parse_period("2026-10").unwrap(), "2026-10");
        assert_eq!(parse_period("2026-10-15").unwrap(), "2026-10-15");
        assert!(
            parse_period("2026-10-01")
                .unwrap_err()
                .contains("did you mean 2026-10?")
        );
        assert!(parse_period("October").is_err());
        assert!(parse_period("2026-13").is_err());
    }

    #[test]
    fn the_scope_is_one_namespace_a_provider_or_everything() {
        let args = parse(&["--period", "2026-10", "--format", "json"]).unwrap();
        assert_eq!(
            scope(&args.selection, "acme-cloud-globex"),
            Scope::Namespace("acme-cloud-globex".into())
        );
        assert_eq!(args.format, Format::Json);
        let args = parse(&["-n", "acme-cloud-initech"]).unwrap();
        assert_eq!(
            scope(&args.selection, "default"),
            Scope::Namespace("acme-cloud-initech".into())
        );
        let args = parse(&["--provider-namespace", "acme-cloud"]).unwrap();
        assert_eq!(scope(&args.selection, "default"), Scope::Provider("acme-cloud".into()));
        assert_eq!(scope(&parse(&["-A"]).unwrap().selection, "default"), Scope::All);
        assert!(parse(&["-A", "-n", "x"]).is_err(), "one scope at a time");
        assert!(parse(&["--format", "xml"]).is_err());
    }
}
