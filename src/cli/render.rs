//! `navigator invoice render NAME`: one customer's Invoice as a PDF or HTML document
//! ([`crate::billing::document`]).
//!
//! It reads the Invoice as the current kubeconfig user, and the provider's and customer's display names
//! from the ProviderOrg and CustomerOrg when that user may read them; otherwise (a customer's billing user
//! may read only its invoices) the document names them as the Invoice does.

use std::path::PathBuf;

use anyhow::Context as _;
use kube::api::Api;

use crate::api::{CustomerOrg, Invoice, ProviderOrg};
use crate::billing::document::{self, InvoiceDocument};

/// The document format of `navigator invoice render`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentFormat {
    Pdf,
    Html,
}

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// The Invoice's name, e.g. `globex-2026-10`.
    pub name: String,
    /// The customer namespace the Invoice is in. Default: the current context's namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// `pdf` (A4, standard fonts, the same bytes on every run) or `html` (one self-contained page).
    #[arg(long, value_enum, default_value_t = DocumentFormat::Pdf)]
    pub format: DocumentFormat,
    /// The file to write.
    #[arg(short, long)]
    pub out: PathBuf,
}

/// A display name read with `get`, or `fallback` when the object cannot be read (not allowed, gone).
async fn display_name<K>(api: Api<K>, name: &str, fallback: &str, display: impl Fn(&K) -> &str) -> String
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(Some(obj)) if !display(&obj).is_empty() => display(&obj).to_string(),
        _ => fallback.to_string(),
    }
}

/// `navigator invoice render`.
pub async fn run(args: RenderArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.context("reading the kubeconfig")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let invoice = Api::<Invoice>::namespaced(client.clone(), &namespace)
        .get_opt(&args.name)
        .await
        .with_context(|| format!("reading invoice {} in namespace {namespace}", args.name))?
        .with_context(|| format!("there is no invoice {} in namespace {namespace}", args.name))?;
    let spec = &invoice.spec;
    let provider = &spec.provider_org_ref.name;
    let provider = display_name(Api::<ProviderOrg>::all(client.clone()), provider, provider, |p| {
        &p.spec.display_name
    })
    .await;
    let customer = &spec.customer_org_ref;
    let customer = display_name(
        Api::<CustomerOrg>::namespaced(client, &customer.namespace),
        &customer.name,
        &customer.name,
        |c| &c.spec.display_name,
    )
    .await;
    let doc = InvoiceDocument {
        name: &args.name,
        provider: &provider,
        customer: &customer,
        spec,
    };
    let bytes = match args.format {
        DocumentFormat::Pdf => document::pdf(&doc),
        DocumentFormat::Html => document::html(&doc).into_bytes(),
    };
    std::fs::write(&args.out, bytes).with_context(|| format!("writing {}", args.out.display()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        render: RenderArgs,
    }

    #[test]
    fn render_takes_a_name_a_namespace_a_format_and_a_file() {
        let cli = Cli::try_parse_from([
            "render",
            "globex-2026-10",
            "-n",
            "acme-globex",
            "--format",
            "html",
            "--out",
            "x.html",
        ])
        .unwrap();
        assert_eq!(cli.render.name, "globex-2026-10");
        assert_eq!(cli.render.namespace.as_deref(), Some("acme-globex"));
        assert_eq!(cli.render.format, DocumentFormat::Html);
        let cli = Cli::try_parse_from(["render", "globex-2026-10", "--out", "x.pdf"]).unwrap();
        assert_eq!(cli.render.format, DocumentFormat::Pdf, "PDF unless asked");
        assert!(
            Cli::try_parse_from(["render", "globex-2026-10"]).is_err(),
            "--out is required"
        );
        assert!(Cli::try_parse_from(["render", "x", "--out", "x", "--format", "docx"]).is_err());
    }
}
