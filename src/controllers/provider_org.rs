//! ProviderOrg: the provider's namespace, its administrators' RoleBinding and what it is entitled to. Its
//! billing (invoices, the current period's view, what is attributed to it) runs apart, in
//! [`crate::controllers::provider_billing`]; Ready summarises the `Billing` condition that writes.

use async_trait::async_trait;
use kube::ResourceExt;

use crate::api::ProviderOrg;
use crate::api::provider_org::ProviderOrgStatus;
use crate::controllers::entitlement;
use crate::controllers::namespaces::{self, PROVIDER_ORG_LABEL};
use crate::controllers::provider_billing::{self, ProviderBilling};
use crate::runtime::conditions::{self, Phase};
use crate::runtime::context::Context;
use crate::runtime::error::Error;
use crate::runtime::part::{self, Part};
use crate::runtime::reconciler::{Managed, Outcome};

crate::impl_object!(ProviderOrg, ProviderOrgStatus, cluster);

/// The ClusterRole the provider's administrators are bound to in its namespace (from the role catalogue).
pub const ADMINISTRATOR_ROLE: &str = "navigator-provider-administrator";
pub const ADMINISTRATORS_BINDING: &str = "navigator-provider-administrators";

#[async_trait]
impl Managed for ProviderOrg {
    // The namespace is left in place when the ProviderOrg goes: it holds the provider's customers, whose own
    // finalizers decide what happens to what they provisioned.
    const FINALIZER: Option<&'static str> = None;

    async fn apply(&self, ctx: &Context) -> Result<Outcome<ProviderOrgStatus>, Error> {
        let name = self.name_any();
        let namespace = &self.spec.namespace;
        let labels = namespaces::ownership_labels(&[(PROVIDER_ORG_LABEL, &name)]);
        let children = &ctx.stores.children;
        namespaces::ensure_namespace(&ctx.client, &children.provider_namespaces, namespace, labels.clone()).await?;
        let subjects = namespaces::rbac_subjects(&self.spec.administrators);
        namespaces::ensure_role_binding(
            &ctx.client,
            &children.administrator_bindings,
            namespace,
            ADMINISTRATORS_BINDING,
            ADMINISTRATOR_ROLE,
            subjects,
            labels,
        )
        .await?;

        let today = ctx.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let contracts = ctx.stores.contracts_in(namespace);
        let entitlements = entitlement::entitlements(&contracts, today);
        let mut status = self.status.clone().unwrap_or_default();
        status.namespace = Some(namespace.clone());
        let message = if entitlements.endpoints.is_empty() {
            format!("namespace {namespace} ready; no active commitment contract yet, so nothing can be provisioned")
        } else {
            format!(
                "namespace {namespace} ready; entitled to {} on {}",
                entitlements.services.join(", "),
                entitlements.endpoints.join(", ")
            )
        };
        status.entitlements = Some(entitlements);
        // Entitlements change at contract boundaries: look again at the next one.
        let next = contracts
            .iter()
            .filter_map(|c| entitlement::next_boundary(&c.spec, today))
            .min();
        let requeue = next
            .and_then(|day| crate::controllers::commitment_contract::until_day(ctx, day))
            .map_or(ctx.settings.resync, |until| until.min(ctx.settings.resync));

        // Billing runs apart; what it last found shows here too (in Ready, Stalled or Synced, with an Event
        // on a change), and a change of its condition brings this reconcile back.
        let billing = self
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, provider_billing::CONDITION));
        let phase = part::summarise(Phase::ready(message), "billing", billing, self.spec.billing.is_some());
        Ok(Outcome::new(status, phase).requeue_after(requeue))
    }

    fn without_parts(status: &mut ProviderOrgStatus) {
        ProviderBilling::take(status);
        status.conditions.retain(|c| c.type_ != provider_billing::CONDITION);
    }
}
impl crate::controllers::registry::Kind for ProviderOrg {
    /// Also watches the provider namespaces (metadata only) and the administrators' RoleBindings, by the
    /// label Navigator puts on them, so one deleted or edited by someone else is repaired at once; and runs
    /// billing as a second controller over the ProviderOrg cache, fed by the same watch. Providers are woken
    /// for billing only (a customer became Ready: its invoice may be due).
    fn start(
        wiring: &mut crate::controllers::registry::Wiring,
        writer: kube::runtime::reflector::store::Writer<Self>,
        woken: futures::channel::mpsc::UnboundedReceiver<kube::runtime::reflector::ObjectRef<Self>>,
    ) -> Vec<futures::future::BoxFuture<'static, ()>> {
        use crate::controllers::namespaces::{self, PROVIDER_ORG_LABEL};
        use crate::controllers::provider_billing::ProviderBilling;
        use crate::runtime::watch::{
            WatchesChildren, controller, drive, drive_part, namespace_metadata, part_controller, whole,
        };
        let namespaces_writer = wiring.children.provider_namespaces.take().expect("taken once");
        let bindings_writer = wiring.children.administrator_bindings.take().expect("taken once");
        let (to_billing, providers_to_bill) = futures::channel::mpsc::unbounded();
        let (wakers, stores) = (wiring.wakers.clone(), wiring.ctx.stores.clone());
        let providers = writer.as_reader();
        let recorder = &wiring.ctx.recorder;
        let provider_controller = controller(
            &wiring.client,
            &wiring.config,
            writer,
            recorder,
            move |provider: &Self| {
                wakers.provider_changed(&stores, provider);
                let _ = to_billing.unbounded_send(provider.clone());
            },
        )
        .watches_children(
            "ProviderOrg namespaces",
            namespace_metadata(&wiring.client, PROVIDER_ORG_LABEL),
            namespaces_writer,
            namespaces::provider_owner,
        )
        .watches_children(
            "ProviderOrg RoleBindings",
            whole(&wiring.client, PROVIDER_ORG_LABEL, &bindings_writer, recorder),
            bindings_writer,
            namespaces::provider_owner,
        );
        let billing_controller = part_controller::<ProviderBilling>(providers_to_bill, providers);
        vec![
            drive(provider_controller, wiring.ctx.clone()),
            drive_part::<ProviderBilling>(billing_controller.reconcile_on(woken), wiring.ctx.clone()),
        ]
    }
}
