//! Tests of rating, invoices, views and exports, with hand-computed expectations and properties.

use std::str::FromStr;

use jiff::Timestamp;
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn cur(code: &str) -> Currency {
    Currency::from_code(code).unwrap()
}

fn usage(customer: &str, subscription: &str, service: &str, metric: &str, unit: &str, q: &str) -> UsageRecord {
    UsageRecord {
        customer: customer.into(),
        subscription: subscription.into(),
        service: service.into(),
        metric: metric.into(),
        unit: unit.into(),
        quantity: d(q),
    }
}

fn november() -> Period {
    BillingCycle::utc(1)
        .unwrap()
        .period_containing("2026-11-10T00:00:00Z".parse().unwrap())
        .unwrap()
}

fn header(customer: &str, currency: &str, tax_rate: &str) -> InvoiceHeader {
    InvoiceHeader {
        customer: customer.into(),
        provider: "cloudco".into(),
        reseller: None,
        period: november(),
        currency: cur(currency),
        tax_rate: d(tax_rate),
    }
}

fn book() -> PriceBook {
    PriceBook::new([
        Price::flat("compute", "vcpu-hours", "vCPU-h", d("0.05")),
        Price::flat("compute", "memory-gib-hours", "GiB-h", d("0.01")),
        Price::flat("storage", "gib-hours", "GiB-h", d("0.000125")),
        Price::flat("backup", "vcpu-hours", "vCPU-h", d("0.0125")),
        Price::graduated(
            "network",
            "egress-gib",
            "GiB",
            &[(d("100"), d("0.10")), (d("500"), d("0.08"))],
            d("0.05"),
        ),
    ])
    .unwrap()
}

/// (subscription, service, metric, tier, quantity, unit_price, amount), all as strings.
fn summary(lines: &[LineItem]) -> Vec<[String; 7]> {
    lines
        .iter()
        .map(|l| {
            [
                l.subscription.clone(),
                l.service.clone(),
                l.metric.clone(),
                l.tier.map(|t| t.to_string()).unwrap_or_default(),
                l.quantity.to_string(),
                l.unit_price.to_string(),
                l.amount.to_string(),
            ]
        })
        .collect()
}

fn row(cells: [&str; 7]) -> [String; 7] {
    cells.map(str::to_owned)
}

#[test]
fn a_month_of_one_vm_in_eur() {
    // 2 vCPU and 4 GiB for 720 hours: 1,440 vCPU-h × 0.05 = 72.00, 2,880 GiB-h × 0.01 = 28.80.
    let records = [
        usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "1440"),
        usage("acme", "vm1", "compute", "memory-gib-hours", "GiB-h", "2880"),
    ];
    let inv = draft_invoice(header("acme", "EUR", "0.19"), &records, &book()).unwrap();
    assert_eq!(inv.name, "acme-2026-11");
    assert_eq!(
        summary(&inv.lines),
        vec![
            row(["vm1", "compute", "memory-gib-hours", "", "2880", "0.01", "28.80"]),
            row(["vm1", "compute", "vcpu-hours", "", "1440", "0.05", "72.00"]),
        ]
    );
    // 100.80 × 0.19 = 19.152 → 19.15.
    assert_eq!(
        (inv.subtotal.to_string(), inv.tax.to_string(), inv.total.to_string()),
        ("100.80".into(), "19.15".into(), "119.95".into())
    );
}

#[test]
fn line_amounts_and_tax_round_half_to_even() {
    let records = [
        // 10 × 0.0125 = 0.125 → 0.12, split over two records.
        usage("acme", "web", "backup", "vcpu-hours", "vCPU-h", "4"),
        usage("acme", "web", "backup", "vcpu-hours", "vCPU-h", "6"),
        // 10.8 × 0.0125 = 0.135 → 0.14.
        usage("acme", "db", "backup", "vcpu-hours", "vCPU-h", "10.8"),
        // 640 × 0.000125 = 0.08.
        usage("acme", "db", "storage", "gib-hours", "GiB-h", "640"),
    ];
    let inv = draft_invoice(header("acme", "EUR", "0.25"), &records, &book()).unwrap();
    assert_eq!(
        summary(&inv.lines),
        vec![
            row(["db", "backup", "vcpu-hours", "", "10.8", "0.0125", "0.14"]),
            row(["db", "storage", "gib-hours", "", "640", "0.000125", "0.08"]),
            row(["web", "backup", "vcpu-hours", "", "10", "0.0125", "0.12"]),
        ]
    );
    // Subtotal 0.34; tax 0.34 × 0.25 = 0.085 → 0.08 (half to even), total 0.42.
    assert_eq!(
        (inv.subtotal.to_string(), inv.tax.to_string(), inv.total.to_string()),
        ("0.34".into(), "0.08".into(), "0.42".into())
    );
}

#[test]
fn yen_have_no_minor_unit() {
    let book = PriceBook::new([Price::flat("compute", "vcpu-hours", "vCPU-h", d("2.5"))]).unwrap();
    let records = [
        usage("acme", "a", "compute", "vcpu-hours", "vCPU-h", "3"), // 7.5 → 8
        usage("acme", "b", "compute", "vcpu-hours", "vCPU-h", "1"), // 2.5 → 2
        usage("acme", "c", "compute", "vcpu-hours", "vCPU-h", "5"), // 12.5 → 12
        usage("acme", "d", "compute", "vcpu-hours", "vCPU-h", "1.2"), // 3
    ];
    let inv = draft_invoice(header("acme", "JPY", "0.1"), &records, &book).unwrap();
    let amounts: Vec<String> = inv.lines.iter().map(|l| l.amount.to_string()).collect();
    assert_eq!(amounts, ["8", "2", "12", "3"]);
    // 25 × 0.1 = 2.5 → 2.
    assert_eq!((inv.subtotal, inv.tax, inv.total), (d("25"), d("2"), d("27")));
    assert_eq!(inv.total.to_string(), "27");
}

#[test]
fn three_digit_currency() {
    let book = PriceBook::new([Price::flat("storage", "gib-hours", "GiB-h", d("0.0125"))]).unwrap();
    let records = [
        usage("acme", "a", "storage", "gib-hours", "GiB-h", "1"), // 0.0125 → 0.012
        usage("acme", "b", "storage", "gib-hours", "GiB-h", "1.08"), // 0.0135 → 0.014
    ];
    let inv = draft_invoice(header("acme", "BHD", "0.1"), &records, &book).unwrap();
    let amounts: Vec<String> = inv.lines.iter().map(|l| l.amount.to_string()).collect();
    assert_eq!(amounts, ["0.012", "0.014"]);
    // 0.026 × 0.1 = 0.0026 → 0.003.
    assert_eq!(
        (inv.subtotal.to_string(), inv.tax.to_string(), inv.total.to_string()),
        ("0.026".into(), "0.003".into(), "0.029".into())
    );
}

#[test]
fn graduated_prices_give_one_line_per_band() {
    let records = [
        usage("acme", "edge", "network", "egress-gib", "GiB", "300"),
        usage("acme", "edge", "network", "egress-gib", "GiB", "450"),
        // Another subscription starts again at the first band.
        usage("acme", "lb", "network", "egress-gib", "GiB", "60"),
    ];
    let inv = draft_invoice(header("acme", "EUR", "0"), &records, &book()).unwrap();
    assert_eq!(
        summary(&inv.lines),
        vec![
            row(["edge", "network", "egress-gib", "1", "100", "0.10", "10.00"]),
            row(["edge", "network", "egress-gib", "2", "400", "0.08", "32.00"]),
            row(["edge", "network", "egress-gib", "3", "250", "0.05", "12.50"]),
            row(["lb", "network", "egress-gib", "1", "60", "0.10", "6.00"]),
        ]
    );
    assert_eq!(
        (inv.subtotal.to_string(), inv.tax.to_string(), inv.total.to_string()),
        ("60.50".into(), "0.00".into(), "60.50".into())
    );
}

#[test]
fn invoice_from_lines_sorts_them_and_checks_the_customer() {
    let records = [
        usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "1440"),
        usage("acme", "vm2", "compute", "vcpu-hours", "vCPU-h", "10"),
        usage("acme", "edge", "network", "egress-gib", "GiB", "150"),
    ];
    let lines = rate(&records, &book(), cur("EUR")).unwrap();
    let mut reversed = lines.clone();
    reversed.reverse();
    assert_ne!(lines, reversed);
    let from_reversed = InvoiceDraft::new(header("acme", "EUR", "0.19"), reversed).unwrap();
    assert_eq!(
        from_reversed,
        InvoiceDraft::new(header("acme", "EUR", "0.19"), lines.clone()).unwrap()
    );
    assert_eq!(from_reversed.lines, lines);
    assert_eq!(
        InvoiceDraft::new(header("globex", "EUR", "0.19"), lines),
        Err(RatingError::CustomerMismatch {
            expected: "globex".into(),
            found: "acme".into()
        })
    );
}

#[test]
fn no_usage_gives_an_empty_invoice_and_zero_usage_no_line() {
    let inv = draft_invoice(header("acme", "EUR", "0.19"), &[], &book()).unwrap();
    assert!(inv.lines.is_empty());
    assert_eq!(
        (inv.subtotal.to_string(), inv.tax.to_string(), inv.total.to_string()),
        ("0.00".into(), "0.00".into(), "0.00".into())
    );
    let zero = [usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "0")];
    assert!(
        draft_invoice(header("acme", "EUR", "0.19"), &zero, &book())
            .unwrap()
            .lines
            .is_empty()
    );
}

#[test]
fn unpriced_usage_is_an_error_naming_service_and_metric() {
    let records = [
        usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "1"),
        usage("acme", "vm1", "gpu", "gpu-hours", "GPU-h", "2"),
        usage("acme", "vm1", "dns", "queries", "query", "2"),
    ];
    let err = rate(&records, &book(), cur("EUR")).unwrap_err();
    // The first unpriced key in sort order, whatever the order of the records.
    let expected = RatingError::Unpriced {
        service: "dns".into(),
        metric: "queries".into(),
        subscription: "vm1".into(),
    };
    assert_eq!(err, expected);
    let mut reversed = records.to_vec();
    reversed.reverse();
    assert_eq!(rate(&reversed, &book(), cur("EUR")).unwrap_err(), expected);
    let msg = err.to_string();
    assert!(msg.contains("\"dns\"") && msg.contains("\"queries\""), "{msg}");
}

#[test]
fn wrong_units_negative_usage_other_customers_and_bad_tax_rates_are_errors() {
    let wrong_unit = [usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-min", "60")];
    assert_eq!(
        rate(&wrong_unit, &book(), cur("EUR")),
        Err(RatingError::UnitMismatch {
            service: "compute".into(),
            metric: "vcpu-hours".into(),
            expected: "vCPU-h".into(),
            found: "vCPU-min".into()
        })
    );
    let negative = [
        usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "5"),
        usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "-1"),
    ];
    assert!(matches!(
        rate(&negative, &book(), cur("EUR")),
        Err(RatingError::NegativeQuantity { .. })
    ));
    let other = [usage("globex", "vm1", "compute", "vcpu-hours", "vCPU-h", "5")];
    assert_eq!(
        draft_invoice(header("acme", "EUR", "0"), &other, &book()),
        Err(RatingError::CustomerMismatch {
            expected: "acme".into(),
            found: "globex".into()
        })
    );
    for rate in ["-0.01", "1.01", "19"] {
        assert_eq!(
            draft_invoice(header("acme", "EUR", rate), &[], &book()),
            Err(RatingError::TaxRate(d(rate)))
        );
    }
    assert!(draft_invoice(header("acme", "EUR", "1"), &[], &book()).is_ok());
}

#[test]
fn overflow_is_an_error_not_a_panic() {
    let book = PriceBook::new([Price::flat("s", "m", "u", d("10000000000000000000"))]).unwrap();
    let records = [usage("acme", "x", "s", "m", "u", "100000000000000000000")];
    assert!(matches!(
        rate(&records, &book, cur("EUR")),
        Err(RatingError::Overflow(_))
    ));
    let big = usage("acme", "x", "s", "m", "u", "70000000000000000000000000000");
    assert!(matches!(
        rate(&[big.clone(), big], &book, cur("EUR")),
        Err(RatingError::Overflow(_))
    ));
}

/// The Invoice resource written for `draft`, in the customer namespace `cloud-<customer>`.
fn resource(draft: &InvoiceDraft) -> crate::api::Invoice {
    let mut invoice = crate::api::Invoice::new(&draft.name, draft.spec("cloud"));
    invoice.metadata.namespace = Some(format!("cloud-{}", draft.customer));
    invoice
}

#[test]
fn resellers_are_carried_and_totalled() {
    let mut h = header("acme", "EUR", "0.19");
    h.reseller = Some("resellco".into());
    let acme = draft_invoice(
        h,
        &[usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "1440")],
        &book(),
    )
    .unwrap();
    assert_eq!(acme.reseller.as_deref(), Some("resellco"));
    let mut h = header("globex", "EUR", "0.19");
    h.reseller = Some("resellco".into());
    let globex = draft_invoice(
        h,
        &[usage("globex", "vm", "compute", "vcpu-hours", "vCPU-h", "100")],
        &book(),
    )
    .unwrap();
    let direct = draft_invoice(header("initech", "EUR", "0.19"), &[], &book()).unwrap();
    let specs = [acme.spec("cloud"), direct.spec("cloud"), globex.spec("cloud")];
    assert_eq!(
        specs[0].reseller_ref.as_ref().map(|r| r.name.as_str()),
        Some("resellco")
    );
    let totals = reseller_totals(&specs).unwrap();
    // 72.00 + 5.00 = 77.00 before tax; 85.68 + 5.95 = 91.63 with it.
    assert_eq!(
        totals,
        vec![ResellerTotal {
            reseller: "resellco".into(),
            provider: "cloudco".into(),
            period_start: jiff::civil::date(2026, 11, 1),
            period_end: jiff::civil::date(2026, 11, 30),
            currency: "EUR".into(),
            invoices: 2,
            subtotal: d("77.00"),
            total: d("91.63")
        }]
    );
}

#[test]
fn the_invoice_resource_depends_only_on_the_draft() {
    let mut h = header("acme", "EUR", "0.19");
    h.reseller = Some("resellco".into());
    let records = [usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "1440")];
    let draft = draft_invoice(h.clone(), &records, &book()).unwrap();
    let spec = draft.spec("cloud");
    assert_eq!(spec, draft_invoice(h, &records, &book()).unwrap().spec("cloud"));
    assert_eq!(
        (
            spec.customer_org_ref.name.as_str(),
            spec.customer_org_ref.namespace.as_str()
        ),
        ("acme", "cloud")
    );
    assert_eq!(spec.provider_org_ref.name, "cloudco");
    assert_eq!(
        (spec.period_start, spec.period_end),
        (jiff::civil::date(2026, 11, 1), jiff::civil::date(2026, 11, 30))
    );
    assert_eq!(
        spec.issued_at.0,
        "2026-12-01T00:00:00Z".parse::<Timestamp>().unwrap(),
        "issued when the period ends"
    );
    assert_eq!(spec.line_items.len(), 1);
    assert_eq!(spec.line_items[0].amount.to_string(), "72.00");
    assert_eq!(
        (spec.subtotal, spec.tax, spec.total),
        (d("72.00"), d("13.68"), d("85.68"))
    );
    // The resource's schema takes it: every decimal is a string the pattern accepts.
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["lineItems"][0]["unitPrice"], "0.05");
    assert_eq!(json["issuedAt"], "2026-12-01T00:00:00Z");
}

#[test]
fn top_customers_breaks_ties_by_name_and_adds_up_duplicates() {
    let c = |customer: &str, amount: &str| CustomerCharge {
        customer: customer.into(),
        amount: d(amount),
    };
    let charges = [
        c("zeta", "10"),
        c("alpha", "10"),
        c("beta", "30"),
        c("gamma", "5"),
        c("alpha", "1"),
        c("delta", "10"),
    ];
    assert_eq!(
        top_customers(&charges, 3).unwrap(),
        vec![c("beta", "30"), c("alpha", "11"), c("delta", "10")]
    );
    let mut reversed = charges.to_vec();
    reversed.reverse();
    assert_eq!(
        top_customers(&reversed, 4).unwrap(),
        vec![c("beta", "30"), c("alpha", "11"), c("delta", "10"), c("zeta", "10")]
    );
    assert_eq!(top_customers(&charges, 0).unwrap(), vec![]);
    assert_eq!(top_customers(&charges, 99).unwrap().len(), 5);
}

#[test]
fn estimate_summarises_per_metric_and_customer() {
    let records = [
        usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "100"),
        usage("acme", "vm2", "compute", "vcpu-hours", "vCPU-h", "50"),
        usage("globex", "vm", "compute", "vcpu-hours", "vCPU-h", "200"),
        usage("globex", "edge", "network", "egress-gib", "GiB", "150"),
        usage("initech", "vm", "compute", "memory-gib-hours", "GiB-h", "10"),
    ];
    let est = estimate_charges(&records, &book(), cur("EUR"), 2).unwrap();
    // acme 5.00 + 2.50; globex 10.00 + 10.00 + 4.00; initech 0.10.
    assert_eq!(est.estimated_charges.to_string(), "31.60");
    let c = |customer: &str, amount: &str| CustomerCharge {
        customer: customer.into(),
        amount: d(amount),
    };
    assert_eq!(est.top_customers, vec![c("globex", "24.00"), c("acme", "7.50")]);
    let usage: Vec<(String, String, String, String)> = est
        .usage
        .iter()
        .map(|m| {
            (
                m.service.clone(),
                m.metric.clone(),
                m.quantity.to_string(),
                m.amount.to_string(),
            )
        })
        .collect();
    let u = |s: &str, m: &str, q: &str, a: &str| (s.to_owned(), m.to_owned(), q.to_owned(), a.to_owned());
    assert_eq!(
        usage,
        vec![
            u("compute", "memory-gib-hours", "10", "0.10"),
            u("compute", "vcpu-hours", "350", "17.50"),
            u("network", "egress-gib", "150", "14.00"),
        ]
    );
}

#[test]
fn invoice_csv_is_rfc_4180_with_a_header_and_one_row_per_line() {
    let mut h = header("acme", "EUR", "0.19");
    h.reseller = Some("resell-co".into());
    let records = [
        usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "1440"),
        usage("acme", "vm1", "compute", "memory-gib-hours", "GiB-h", "2880"),
        usage("acme", "edge", "network", "egress-gib", "GiB", "12345.5"),
    ];
    let inv = resource(&draft_invoice(h, &records, &book()).unwrap());
    let empty = resource(&draft_invoice(header("globex", "EUR", "0"), &[], &book()).unwrap());
    let csv = invoices_csv(&[inv, empty]).unwrap();
    let acme = "acme-2026-11,cloud-acme,acme,cloudco,resell-co,2026-11-01,2026-11-30,2026-12-01T00:00:00Z,EUR";
    let acme_totals = "735.08,0.19,139.67,874.75\r\n";
    let expected = [
        "invoice,namespace,customer,provider,reseller,period_first_day,period_last_day,issued_at,currency,\
         subscription,service,metric,quantity,unit,unit_price,amount,invoice_subtotal,tax_rate,invoice_tax,\
         invoice_total\r\n"
            .to_owned(),
        format!("{acme},edge,network,egress-gib,100,GiB,0.10,10.00,{acme_totals}"),
        format!("{acme},edge,network,egress-gib,400,GiB,0.08,32.00,{acme_totals}"),
        format!("{acme},edge,network,egress-gib,11845.5,GiB,0.05,592.28,{acme_totals}"),
        format!("{acme},vm1,compute,memory-gib-hours,2880,GiB-h,0.01,28.80,{acme_totals}"),
        format!("{acme},vm1,compute,vcpu-hours,1440,vCPU-h,0.05,72.00,{acme_totals}"),
        "globex-2026-11,cloud-globex,globex,cloudco,,2026-11-01,2026-11-30,2026-12-01T00:00:00Z,EUR,,,,,,,,\
         0.00,0,0.00,0.00\r\n"
            .to_owned(),
    ]
    .concat();
    // 11,845.5 × 0.05 = 592.275 → 592.28 (half to even); subtotal 10.00 + 32.00 + 592.28 + 28.80 + 72.00 =
    // 735.08; tax 735.08 × 0.19 = 139.6652 → 139.67.
    assert_eq!(csv, expected);
    assert_eq!(invoices_csv(&[]).unwrap(), INVOICE_CSV_HEADER.join(",") + "\r\n");
}

#[test]
fn csv_quotes_what_needs_quoting_and_guards_formulas() {
    let book = PriceBook::new([Price::flat("compute", "vcpu-hours", "=1+1, \"hours\"", d("1"))]).unwrap();
    let records = [usage("acme", "vm1", "compute", "vcpu-hours", "=1+1, \"hours\"", "2")];
    let inv = resource(&draft_invoice(header("acme", "EUR", "0"), &records, &book).unwrap());
    let csv = invoices_csv(std::slice::from_ref(&inv)).unwrap();
    let row = csv.lines().nth(1).unwrap();
    assert!(
        row.contains(",vm1,compute,vcpu-hours,2,\"'=1+1, \"\"hours\"\"\",1,2.00,"),
        "{row}"
    );
    let report = usage_report_csv(&[inv]).unwrap();
    assert!(report.contains("\"'=1+1, \"\"hours\"\"\""), "{report}");
}

#[test]
fn invoice_json_keeps_decimals_as_strings() {
    let records = [usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "1440")];
    let inv = resource(&draft_invoice(header("acme", "EUR", "0.19"), &records, &book()).unwrap());
    let json: serde_json::Value = serde_json::from_str(&invoices_json(&[inv]).unwrap()).unwrap();
    let inv = &json[0];
    assert_eq!(inv["name"], "acme-2026-11");
    assert_eq!(inv["namespace"], "cloud-acme");
    assert_eq!(inv["currency"], "EUR");
    assert!(inv.get("resellerRef").is_none());
    assert_eq!(inv["periodStart"], "2026-11-01");
    assert_eq!(inv["periodEnd"], "2026-11-30");
    assert_eq!(inv["lineItems"][0]["unitPrice"], "0.05");
    assert_eq!(inv["lineItems"][0]["amount"], "72.00");
    assert_eq!(
        (&inv["subtotal"], &inv["taxRate"], &inv["tax"], &inv["total"]),
        (&"72.00".into(), &"0.19".into(), &"13.68".into(), &"85.68".into())
    );
}

#[test]
fn usage_report_csv_adds_up_per_customer_and_price() {
    let acme = [
        usage("acme", "vm1", "compute", "vcpu-hours", "vCPU-h", "100"),
        usage("acme", "vm2", "compute", "vcpu-hours", "vCPU-h", "50.5"),
    ];
    let globex = [
        usage("globex", "edge", "network", "egress-gib", "GiB", "150"),
        usage("globex", "lb", "network", "egress-gib", "GiB", "20"),
    ];
    let invoices = [
        resource(&draft_invoice(header("acme", "EUR", "0.19"), &acme, &book()).unwrap()),
        resource(&draft_invoice(header("globex", "EUR", "0.19"), &globex, &book()).unwrap()),
    ];
    let csv = usage_report_csv(&invoices).unwrap();
    // 50.5 × 0.05 = 2.525 → 2.52, plus 5.00. Graduated bands are per subscription: edge 100 at 0.10 and 50
    // at 0.08, lb 20 at 0.10.
    assert_eq!(
        csv,
        concat!(
            "service,metric,customer,quantity,unit,unit_price,amount,currency,period_first_day,period_last_day\r\n",
            "compute,vcpu-hours,acme,150.5,vCPU-h,0.05,7.52,EUR,2026-11-01,2026-11-30\r\n",
            "network,egress-gib,globex,50,GiB,0.08,4.00,EUR,2026-11-01,2026-11-30\r\n",
            "network,egress-gib,globex,120,GiB,0.10,12.00,EUR,2026-11-01,2026-11-30\r\n",
        )
    );
}

// Properties.

/// The configuration of every property test of the module: the default, with regression files kept beside
/// the source (in `src/billing/proptest-regressions/`).
pub(crate) fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

const KEYS: [(&str, &str, &str); 5] = [
    ("compute", "vcpu-hours", "vCPU-h"),
    ("compute", "memory-gib-hours", "GiB-h"),
    ("storage", "gib-hours", "GiB-h"),
    ("backup", "vcpu-hours", "vCPU-h"),
    ("network", "egress-gib", "GiB"),
];

fn decimal(max_mantissa: i64, max_scale: u32) -> impl Strategy<Value = Decimal> {
    (0..=max_mantissa, 0..=max_scale).prop_map(|(m, s)| Decimal::new(m, s))
}

/// A price book over `KEYS`, each price flat or graduated with up to three tiers.
fn arb_book() -> impl Strategy<Value = PriceBook> {
    let price = (
        decimal(1_000_000, 6),
        proptest::collection::vec((decimal(100_000, 2), decimal(1_000_000, 6)), 0..=3),
    );
    proptest::collection::vec(price, KEYS.len()).prop_map(|prices| {
        let entries = KEYS.iter().zip(prices).map(|(&(s, m, u), (unit_price, tiers))| {
            // Turn the threshold increments into strictly increasing thresholds.
            let mut up_to = Decimal::ZERO;
            let tiers: Vec<(Decimal, Decimal)> = tiers
                .into_iter()
                .map(|(step, p)| {
                    up_to += step + Decimal::new(1, 2);
                    (up_to, p)
                })
                .collect();
            Price::graduated(s, m, u, &tiers, unit_price)
        });
        PriceBook::new(entries).unwrap()
    })
}

fn arb_usage() -> impl Strategy<Value = Vec<UsageRecord>> {
    let record = (0..3usize, 0..3usize, 0..KEYS.len(), decimal(10_000_000, 4)).prop_map(|(c, s, k, quantity)| {
        let (service, metric, unit) = KEYS[k];
        UsageRecord {
            customer: ["acme", "globex", "initech"][c].into(),
            subscription: ["a", "b", "c"][s].into(),
            service: service.into(),
            metric: metric.into(),
            unit: unit.into(),
            quantity,
        }
    });
    proptest::collection::vec(record, 0..30)
}

fn arb_currency() -> impl Strategy<Value = Currency> {
    prop_oneof![Just(cur("EUR")), Just(cur("JPY")), Just(cur("BHD")), Just(cur("CLF"))]
}

/// Lines with every decimal as written, so that a different scale (3.0 and 3) counts as a difference.
fn exact(lines: &[LineItem]) -> String {
    format!("{lines:?}")
}

fn period_at(secs: i64) -> Period {
    BillingCycle::utc(1)
        .unwrap()
        .period_containing(Timestamp::from_second(secs).unwrap())
        .unwrap()
}

proptest! {
    #![proptest_config(crate::billing::tests::proptest_config())]
    #[test]
    fn totals_add_up(book in arb_book(), usage in arb_usage(), currency in arb_currency(), tax in (0..=1000i64).prop_map(|m| Decimal::new(m, 3))) {
        for customer in ["acme", "globex", "initech"] {
            let mine: Vec<UsageRecord> = usage.iter().filter(|r| r.customer == customer).cloned().collect();
            let header = InvoiceHeader {
                customer: customer.into(),
                provider: "cloudco".into(),
                reseller: None,
                period: period_at(1_790_000_000),
                currency,
                tax_rate: tax,
            };
            let inv = draft_invoice(header, &mine, &book).unwrap();
            let digits = currency.minor_units();
            prop_assert_eq!(inv.subtotal, inv.lines.iter().map(|l| l.amount).sum::<Decimal>());
            prop_assert_eq!(inv.total, inv.subtotal + inv.tax);
            prop_assert_eq!(inv.tax, (inv.subtotal * tax).round_dp_with_strategy(digits, rust_decimal::RoundingStrategy::MidpointNearestEven));
            for amount in inv.lines.iter().map(|l| l.amount).chain([inv.subtotal, inv.tax, inv.total]) {
                prop_assert_eq!(amount.scale(), digits);
            }
            for l in &inv.lines {
                let exact = l.quantity * l.unit_price;
                prop_assert!((l.amount - exact).abs() * Decimal::from(10i64.pow(digits)) <= Decimal::new(5, 1));
                prop_assert!(l.quantity > Decimal::ZERO);
            }
        }
    }

    #[test]
    fn rating_does_not_depend_on_record_order(
        book in arb_book(),
        (usage, shuffled) in arb_usage().prop_flat_map(|u| (Just(u.clone()), Just(u).prop_shuffle())),
        currency in arb_currency(),
    ) {
        let a = rate(&usage, &book, currency).unwrap();
        let b = rate(&shuffled, &book, currency).unwrap();
        prop_assert_eq!(exact(&a), exact(&b));
        let mut sorted = a.clone();
        sorted.sort_by(|x, y| {
            (&x.customer, &x.subscription, &x.service, &x.metric, x.tier)
                .cmp(&(&y.customer, &y.subscription, &y.service, &y.metric, y.tier))
        });
        prop_assert_eq!(a, sorted);
    }

    #[test]
    fn splitting_a_record_changes_nothing(
        book in arb_book(),
        usage in arb_usage(),
        cuts in proptest::collection::vec(0u32..=100, 30),
        currency in arb_currency(),
    ) {
        // Each record becomes two with the same key: a share of the quantity (with more decimal places),
        // and the rest.
        let split: Vec<UsageRecord> = usage
            .iter()
            .zip(&cuts)
            .flat_map(|(r, &cut)| {
                let first = r.quantity * Decimal::new(i64::from(cut), 2);
                [UsageRecord { quantity: first, ..r.clone() }, UsageRecord { quantity: r.quantity - first, ..r.clone() }]
            })
            .collect();
        prop_assert_eq!(exact(&rate(&usage, &book, currency).unwrap()), exact(&rate(&split, &book, currency).unwrap()));
    }

    #[test]
    fn bands_add_up_to_the_usage(book in arb_book(), usage in arb_usage()) {
        let lines = rate(&usage, &book, cur("EUR")).unwrap();
        for (c, s, k) in itertools_product() {
            let (service, metric, _) = KEYS[k];
            let used: Decimal = usage
                .iter()
                .filter(|r| (r.customer.as_str(), r.subscription.as_str(), r.service.as_str(), r.metric.as_str()) == (c, s, service, metric))
                .map(|r| r.quantity)
                .sum();
            let rated: Decimal = lines
                .iter()
                .filter(|l| (l.customer.as_str(), l.subscription.as_str(), l.service.as_str(), l.metric.as_str()) == (c, s, service, metric))
                .map(|l| l.quantity)
                .sum();
            prop_assert_eq!(used, rated);
        }
    }

    #[test]
    fn top_customers_is_the_head_of_the_full_ranking(usage in arb_usage(), n in 0usize..5) {
        let lines = rate(&usage, &book(), cur("EUR")).unwrap_or_default();
        let all = customer_charges(&lines).unwrap();
        let ranking = top_customers(&all, usize::MAX).unwrap();
        prop_assert_eq!(ranking.len(), all.len());
        for pair in ranking.windows(2) {
            prop_assert!(pair[0].amount > pair[1].amount || pair[0].amount == pair[1].amount && pair[0].customer < pair[1].customer);
        }
        let top = top_customers(&all, n).unwrap();
        prop_assert_eq!(&top[..], &ranking[..n.min(ranking.len())]);
    }
}

fn itertools_product() -> Vec<(&'static str, &'static str, usize)> {
    let mut all = Vec::new();
    for c in ["acme", "globex", "initech"] {
        for s in ["a", "b", "c"] {
            for k in 0..KEYS.len() {
                all.push((c, s, k));
            }
        }
    }
    all
}
