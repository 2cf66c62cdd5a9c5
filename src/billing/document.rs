//! An Invoice as a document to send: PDF and HTML, pure functions of the Invoice and the two parties' names.
//!
//! The same Invoice gives the same bytes on every run: nothing in the output depends on the clock, the
//! machine or a random id (the PDF has no creation date, no document id and no information dictionary).
//! The PDF uses the standard Type 1 fonts Helvetica and Helvetica-Bold, which every PDF reader has, in
//! WinAnsiEncoding, so nothing is embedded; characters outside that encoding print as `?`.
//!
//! Amounts are written in the currency's format: its minor-unit digits, thousands grouped with commas, and
//! the ISO code after the amount (`1,234.56 EUR`, `1,235 JPY`). Unit prices and quantities keep their digits.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use rust_decimal::Decimal;

use crate::api::invoice::InvoiceSpec;

use super::money::Currency;

/// What a rendered invoice shows beyond its spec.
#[derive(Clone, Debug)]
pub struct InvoiceDocument<'a> {
    /// The Invoice's name, e.g. `globex-2026-10`.
    pub name: &'a str,
    /// The provider's display name (the ProviderOrg's `displayName`).
    pub provider: &'a str,
    /// The customer's display name (the CustomerOrg's `displayName`).
    pub customer: &'a str,
    pub spec: &'a InvoiceSpec,
}

/// `value` with its digits grouped by three with commas, e.g. `-12,345.678`.
fn grouped(value: Decimal) -> String {
    let text = value.abs().to_string();
    let (whole, fraction) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let mut out = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    if value.is_sign_negative() && !value.is_zero() {
        out.insert(0, '-');
    }
    out
}

/// An amount in the currency's format: `1,234.56 EUR`. An unknown code keeps the amount's own digits.
pub fn money(amount: Decimal, currency: &str) -> String {
    let amount = match Currency::from_code(currency) {
        Ok(c) => c.round(amount),
        Err(_) => amount,
    };
    format!("{} {currency}", grouped(amount))
}

/// A unit price: every digit it has (prices may be finer than the minor unit), grouped, with the code.
fn price(amount: Decimal, currency: &str) -> String {
    format!("{} {currency}", grouped(amount))
}

/// A quantity without trailing zeros, grouped.
fn quantity(value: Decimal) -> String {
    grouped(value.normalize())
}

/// The tax rate as a percentage, e.g. `21 %`.
fn percent(rate: Decimal) -> String {
    format!("{} %", (rate * Decimal::ONE_HUNDRED).normalize())
}

/// The rows of the line-item table, as text, in the invoice's order.
fn rows(doc: &InvoiceDocument) -> Vec<[String; 6]> {
    let currency = &doc.spec.currency;
    doc.spec
        .line_items
        .iter()
        .map(|l| {
            [
                l.subscription.clone(),
                format!("{} / {}", l.service, l.metric),
                quantity(l.quantity),
                l.unit.clone(),
                price(l.unit_price, currency),
                money(l.amount, currency),
            ]
        })
        .collect()
}

const HEADINGS: [&str; 6] = [
    "Subscription",
    "Service / metric",
    "Quantity",
    "Unit",
    "Unit price",
    "Amount",
];

/// The summary lines under the table: label and amount.
fn totals(doc: &InvoiceDocument) -> [(String, String); 3] {
    let s = doc.spec;
    [
        ("Subtotal".into(), money(s.subtotal, &s.currency)),
        (format!("Tax ({})", percent(s.tax_rate)), money(s.tax, &s.currency)),
        ("Total".into(), money(s.total, &s.currency)),
    ]
}

fn period(spec: &InvoiceSpec) -> String {
    format!("{} to {}", spec.period_start, spec.period_end)
}

// ---------------------------------------------------------------------------------------------------
// HTML

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The invoice as one self-contained HTML page (inline style, no scripts, nothing fetched).
pub fn html(doc: &InvoiceDocument) -> String {
    let s = doc.spec;
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!("<title>Invoice {}</title>\n", escape(doc.name)));
    out.push_str(
        "<style>\nbody{font-family:Helvetica,Arial,sans-serif;margin:2.5em;color:#222}\n\
         table{border-collapse:collapse;width:100%}th,td{padding:.35em .5em;text-align:left}\n\
         th{border-bottom:2px solid #222}td{border-bottom:1px solid #ddd}.n{text-align:right}\n\
         .parties{display:flex;gap:4em;margin:1.5em 0}.totals td{border:none}.total td{font-weight:bold;border-top:2px solid #222}\n\
         </style>\n</head>\n<body>\n",
    );
    out.push_str(&format!("<h1>Invoice {}</h1>\n", escape(doc.name)));
    out.push_str(&format!(
        "<div class=\"parties\">\n<div><strong>From</strong><br>{}</div>\n<div><strong>Bill to</strong><br>{}</div>\n</div>\n",
        escape(doc.provider),
        escape(doc.customer)
    ));
    out.push_str(&format!(
        "<p>Billing period: {}<br>Issued: {}<br>Currency: {}</p>\n",
        period(s),
        s.issued_at.0.strftime("%Y-%m-%d"),
        escape(&s.currency)
    ));
    out.push_str("<table>\n<thead><tr>");
    for (i, heading) in HEADINGS.iter().enumerate() {
        let class = if i == 2 || i >= 4 { " class=\"n\"" } else { "" };
        out.push_str(&format!("<th{class}>{heading}</th>"));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let rows = rows(doc);
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"6\">No usage in this period.</td></tr>\n");
    }
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if i == 2 || i >= 4 { " class=\"n\"" } else { "" };
            out.push_str(&format!("<td{class}>{}</td>", escape(cell)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n<tbody class=\"totals\">\n");
    for (i, (label, amount)) in totals(doc).iter().enumerate() {
        let class = if i == 2 { " class=\"total\"" } else { "" };
        out.push_str(&format!(
            "<tr{class}><td colspan=\"5\" class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
            escape(label),
            escape(amount)
        ));
    }
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

// ---------------------------------------------------------------------------------------------------
// PDF

/// A4 in points.
const PAGE: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 50.0;
/// Line-item rows on one page; more go on the next pages.
const ROWS_PER_PAGE: usize = 32;
const ROW_HEIGHT: f32 = 16.0;
/// Left edge of each column; columns 2, 4 and 5 are right-aligned at the next edge.
const COLUMNS: [f32; 7] = [MARGIN, 160.0, 285.0, 345.0, 405.0, 470.0, PAGE.0 - MARGIN];

const REGULAR: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");

/// Widths of Helvetica's ASCII glyphs (32 to 126) in thousandths of the font size, from its font metrics;
/// used to right-align numbers. Other characters count as 556.
const HELVETICA_WIDTHS: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];

/// The width of `text` in Helvetica at `size` points.
fn text_width(text: &str, size: f32) -> f32 {
    let units: u32 = text
        .chars()
        .map(|c| match c as u32 {
            code @ 32..=126 => u32::from(HELVETICA_WIDTHS[(code - 32) as usize]),
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

/// `text` in WinAnsiEncoding: Latin-1 as is, the euro sign at 0x80, anything else `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '€' => 0x80,
            c if (c as u32) < 0x80 || (0xA0..=0xFF).contains(&(c as u32)) => c as u8,
            _ => b'?',
        })
        .collect()
}

/// `text` cut to fit `width` points at `size`, with `...` when cut.
fn fit(text: &str, width: f32, size: f32) -> String {
    if text_width(text, size) <= width {
        return text.to_string();
    }
    let mut cut: String = text.to_string();
    while !cut.is_empty() && text_width(&format!("{cut}..."), size) > width {
        cut.pop();
    }
    format!("{cut}...")
}

/// Writes text on a page's content stream.
struct Page {
    content: Content,
}

impl Page {
    fn text(&mut self, font: Name, size: f32, x: f32, y: f32, text: &str) {
        let bytes = win_ansi(text);
        self.content
            .begin_text()
            .set_font(font, size)
            .next_line(x, y)
            .show(Str(&bytes))
            .end_text();
    }

    /// Text whose right edge is at `right`.
    fn right(&mut self, font: Name, size: f32, right: f32, y: f32, text: &str) {
        self.text(font, size, right - text_width(text, size), y, text);
    }

    fn rule(&mut self, y: f32, width: f32) {
        self.content
            .set_line_width(width)
            .move_to(MARGIN, y)
            .line_to(PAGE.0 - MARGIN, y)
            .stroke();
    }

    /// One table row: columns 2, 4 and 5 right-aligned.
    fn row(&mut self, font: Name, y: f32, cells: &[impl AsRef<str>]) {
        for (i, cell) in cells.iter().enumerate() {
            let (left, right) = (COLUMNS[i], COLUMNS[i + 1] - 8.0);
            let cell = fit(cell.as_ref(), right - left, 9.0);
            if matches!(i, 2 | 4 | 5) {
                self.right(font, 9.0, right + 8.0 * f32::from(i == 5), y, &cell);
            } else {
                self.text(font, 9.0, left, y, &cell);
            }
        }
    }
}

/// The invoice as a PDF: A4 pages with the parties, the period, the line items (32 per page) and, on the
/// last page, subtotal, tax and total.
pub fn pdf(doc: &InvoiceDocument) -> Vec<u8> {
    let s = doc.spec;
    let rows = rows(doc);
    let chunks: Vec<&[[String; 6]]> = if rows.is_empty() {
        vec![&[]]
    } else {
        rows.chunks(ROWS_PER_PAGE).collect()
    };
    let pages = chunks.len();

    // Objects: 1 catalog, 2 page tree, 3 and 4 fonts, then a page and its content per page.
    let (catalog, tree, regular, bold) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4));
    let page_ref = |i: usize| Ref::new(5 + 2 * i as i32);
    let content_ref = |i: usize| Ref::new(6 + 2 * i as i32);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids((0..pages).map(page_ref)).count(pages as i32);
    for (id, font) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
        pdf.type1_font(id)
            .base_font(Name(font.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }

    for (index, chunk) in chunks.iter().enumerate() {
        let mut page = Page {
            content: Content::new(),
        };
        let top = PAGE.1 - MARGIN;
        page.text(BOLD, 22.0, MARGIN, top - 16.0, "Invoice");
        page.right(REGULAR, 11.0, PAGE.0 - MARGIN, top - 14.0, doc.name);
        let mut y = top - 40.0;
        if index == 0 {
            page.text(BOLD, 10.0, MARGIN, y, "From");
            page.text(BOLD, 10.0, 300.0, y, "Bill to");
            page.text(REGULAR, 12.0, MARGIN, y - 16.0, &fit(doc.provider, 240.0, 12.0));
            page.text(REGULAR, 12.0, 300.0, y - 16.0, &fit(doc.customer, 245.0, 12.0));
            y -= 50.0;
            let facts = [
                ("Billing period", period(s)),
                ("Issued", s.issued_at.0.strftime("%Y-%m-%d").to_string()),
                ("Currency", s.currency.clone()),
            ];
            for (label, value) in facts {
                page.text(BOLD, 10.0, MARGIN, y, label);
                page.text(REGULAR, 10.0, 140.0, y, &value);
                y -= 15.0;
            }
            y -= 15.0;
        }
        page.row(BOLD, y, &HEADINGS);
        page.rule(y - 5.0, 1.0);
        y -= ROW_HEIGHT + 4.0;
        if rows.is_empty() {
            page.text(REGULAR, 9.0, MARGIN, y, "No usage in this period.");
            y -= ROW_HEIGHT;
        }
        for row in chunk.iter() {
            page.row(REGULAR, y, row);
            y -= ROW_HEIGHT;
        }
        if index + 1 == pages {
            page.rule(y + ROW_HEIGHT - 5.0, 0.5);
            y -= 6.0;
            for (i, (label, amount)) in totals(doc).iter().enumerate() {
                let font = if i == 2 { BOLD } else { REGULAR };
                if i == 2 {
                    page.rule(y + 12.0, 1.0);
                }
                page.right(font, 10.0, COLUMNS[5] - 8.0, y, label);
                page.right(font, 10.0, COLUMNS[6], y, amount);
                y -= ROW_HEIGHT + 2.0;
            }
        }
        let footer = format!("Invoice {} - page {} of {pages}", doc.name, index + 1);
        page.right(REGULAR, 8.0, PAGE.0 - MARGIN, MARGIN - 20.0, &footer);

        let mut writer = pdf.page(page_ref(index));
        writer
            .media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1))
            .parent(tree)
            .contents(content_ref(index));
        writer.resources().fonts().pair(REGULAR, regular).pair(BOLD, bold);
        writer.finish();
        pdf.stream(content_ref(index), &page.content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(lines: usize) -> InvoiceSpec {
        let line = json!({"subscription": "globex-vm", "service": "compute", "metric": "vcpu-hours",
                          "quantity": "1240.500", "unit": "vCPU-hour", "unitPrice": "0.0250", "amount": "31.01"});
        serde_json::from_value(json!({
            "customerOrgRef": {"name": "globex", "namespace": "acme"}, "providerOrgRef": {"name": "acme-cloud"},
            "periodStart": "2026-10-01", "periodEnd": "2026-10-31", "issuedAt": "2026-11-01T00:00:00Z",
            "currency": "EUR", "lineItems": vec![line; lines],
            "subtotal": "1234567.50", "taxRate": "0.21", "tax": "259259.18", "total": "1493826.68"
        }))
        .unwrap()
    }

    fn document(spec: &InvoiceSpec) -> InvoiceDocument<'_> {
        InvoiceDocument {
            name: "globex-2026-10",
            provider: "Acme Cloud",
            customer: "Globex <Corp> & Söhne",
            spec,
        }
    }

    #[test]
    fn amounts_are_written_in_the_currencys_format() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(money(d("1234567.5"), "EUR"), "1,234,567.50 EUR");
        assert_eq!(money(d("-12.3"), "USD"), "-12.30 USD");
        assert_eq!(money(d("1234.5"), "JPY"), "1,234 JPY", "half to even, no minor unit");
        assert_eq!(money(d("0"), "BHD"), "0.000 BHD");
        assert_eq!(money(d("999"), "EUR"), "999.00 EUR");
        assert_eq!(price(d("0.0250"), "EUR"), "0.0250 EUR");
        assert_eq!(quantity(d("1240.500")), "1,240.5");
        assert_eq!(percent(d("0.21")), "21 %");
    }

    #[test]
    fn the_html_escapes_names_and_shows_every_line_and_the_totals() {
        let spec = spec(2);
        let html = html(&document(&spec));
        assert!(html.contains("Globex &lt;Corp&gt; &amp; Söhne"));
        assert_eq!(html.matches("<td>globex-vm</td>").count(), 2);
        assert!(html.contains("2026-10-01 to 2026-10-31"));
        assert!(html.contains("Tax (21 %)"));
        assert!(html.contains("1,493,826.68 EUR"));
    }

    #[test]
    fn the_pdf_is_the_same_bytes_every_time_and_has_no_date_or_id() {
        let spec = spec(3);
        let first = pdf(&document(&spec));
        assert_eq!(first, pdf(&document(&spec)));
        assert!(first.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&first);
        for key in ["/CreationDate", "/ModDate", "/ID", "/Info"] {
            assert!(!text.contains(key), "{key} in the PDF");
        }
    }

    #[test]
    fn long_invoices_continue_on_more_pages() {
        let spec = spec(ROWS_PER_PAGE * 2 + 1);
        let text = String::from_utf8_lossy(&pdf(&document(&spec))).into_owned();
        assert!(text.contains("/Count 3"), "three pages");
        assert!(text.contains("page 3 of 3"));
    }

    #[test]
    fn text_outside_win_ansi_becomes_a_question_mark_and_long_cells_are_cut() {
        assert_eq!(win_ansi("Söhne €5 ✓"), b"S\xf6hne \x805 ?".to_vec());
        assert_eq!(fit("short", 100.0, 9.0), "short");
        let cut = fit(&"x".repeat(200), 100.0, 9.0);
        assert!(cut.ends_with("...") && text_width(&cut, 9.0) <= 100.0);
    }
}
