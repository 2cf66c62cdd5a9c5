//! The command line's work beyond `navigator run`: switching organisation ([`org`]) and exporting invoices
//! and usage ([`export`]), and rendering an invoice as a document ([`render`]). It uses only the library's public API, as any client would.

pub mod export;
pub mod org;
pub mod render;
