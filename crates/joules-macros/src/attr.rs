//! Parsing of `#[measure_energy(...)]` arguments.

use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token};

/// The arguments of `#[measure_energy]`.
#[derive(Default)]
pub(crate) struct MeasureArgs {
    /// `name = "..."`: the span's name; defaults to the function's name.
    pub(crate) name: Option<LitStr>,
    /// `sync = path`: a `fn()` called at both edges of the span, e.g. to wait for a GPU.
    pub(crate) sync: Option<syn::Path>,
    /// `ops = expr`: the operations (e.g. multiply-adds) one call does, computed from the
    /// arguments as the span is entered.
    pub(crate) ops: Option<syn::Expr>,
    /// `index = expr`: a `usize` that makes each value a span of its own (`layer.0`,
    /// `layer.1`, ...), computed from the arguments at every call, with no profiler running
    /// too (unlike `ops`): keep it a variable.
    pub(crate) index: Option<syn::Expr>,
}

impl Parse for MeasureArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = MeasureArgs::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                set(&mut args.name, key.span, "name", input, parse_name)?;
            } else if lookahead.peek(kw::sync) {
                let key: kw::sync = input.parse()?;
                set(&mut args.sync, key.span, "sync", input, |input| {
                    hinted(input, "`sync` takes the path of a `fn()`, e.g. `sync = gpu::synchronize`")
                })?;
            } else if lookahead.peek(kw::ops) {
                let key: kw::ops = input.parse()?;
                set(&mut args.ops, key.span, "ops", input, |input| {
                    hinted(input, "`ops` takes an expression of the arguments, e.g. `ops = 2 * n * k * m`")
                })?;
            } else if lookahead.peek(kw::index) {
                let key: kw::index = input.parse()?;
                set(&mut args.index, key.span, "index", input, |input| {
                    hinted(input, "`index` takes a `usize` expression of the arguments, e.g. `index = layer`")
                })?;
            } else if input.peek(syn::Ident) {
                let unknown: syn::Ident = input.parse()?;
                return Err(syn::Error::new(
                    unknown.span(),
                    format!(
                        "unknown argument `{unknown}`: #[measure_energy] takes `name = \"...\"`, `sync = path`, `ops = expr` and `index = expr`"
                    ),
                ));
            } else {
                return Err(lookahead.error());
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

/// Parses `= value` after the key `key` into `slot`, which must still be empty.
fn set<T>(
    slot: &mut Option<T>,
    key: proc_macro2::Span,
    name: &str,
    input: ParseStream<'_>,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(key, format!("`{name}` is given twice")));
    }
    input.parse::<Token![=]>()?;
    *slot = Some(value(input)?);
    Ok(())
}

/// The value after `key =`, its parse error replaced by `hint`.
fn hinted<T: Parse>(input: ParseStream<'_>, hint: &str) -> syn::Result<T> {
    input.parse().map_err(|e| syn::Error::new(e.span(), hint))
}

fn parse_name(input: ParseStream<'_>) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        let name: LitStr = input.parse()?;
        if name.value().trim().is_empty() {
            return Err(syn::Error::new(name.span(), "a span name cannot be empty"));
        }
        if name.value().contains(['/', ';']) {
            return Err(syn::Error::new(
                name.span(),
                "a span name cannot contain `/` or `;`: they separate span paths in reports",
            ));
        }
        Ok(name)
    } else {
        let got: proc_macro2::TokenTree = input.parse()?;
        Err(syn::Error::new_spanned(
            got,
            "`name` takes a string literal, e.g. `name = \"attention\"`; span names are \
             static so that entering a span never formats or allocates",
        ))
    }
}

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(sync);
    syn::custom_keyword!(ops);
    syn::custom_keyword!(index);
}
