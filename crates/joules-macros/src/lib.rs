//! The `#[measure_energy]` attribute. Use it through `joules::measure_energy`: the expansion
//! names only `::joules::__private`, so this crate is an implementation detail.

mod attr;
mod expand;

use proc_macro::TokenStream;

/// Attributes the energy spent inside a function to a span named after it.
///
/// `#[measure_energy]`, `#[measure_energy(name = "layer-1")]`, or with `sync = path` naming a
/// `fn()` called at both edges of the span while a profiler runs (to wait for a GPU, whose work
/// is asynchronous: without it the span measures only the launch). Works on free functions,
/// methods, generic functions and `async fn`s (an async span is entered on every poll, so only
/// time the future actually runs counts). `ops = expr` declares the operations one call does
/// (e.g. `ops = 2 * rows * cols` multiply-adds), computed from the arguments as the span is
/// entered (only while a profiler runs): reports then give operations per call and per joule
/// (an `async fn` counts each poll as a call, and its operations in the first). `index = expr`
/// (a `usize`) makes each value a span of its own, `name.0`, `name.1`, ..., so that the layers
/// of a model, which run the same function, are told apart; it is evaluated at every call,
/// with no profiler running too, so keep it a variable. See the `joules` crate for the full
/// story.
#[proc_macro_attribute]
pub fn measure_energy(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = match syn::parse::<attr::MeasureArgs>(args) {
        Ok(args) => args,
        Err(err) => return with_item(err, item),
    };
    match syn::parse::<syn::ItemFn>(item.clone()) {
        Ok(func) => match expand::expand(&args, func) {
            Ok(tokens) => tokens.into(),
            Err(err) => with_item(err, item),
        },
        Err(_) => with_item(
            syn::Error::new(
                first_token_span(&item),
                "#[measure_energy] applies only to functions and methods; \
                 for a block, use `let _span = joules::span!(\"name\");`",
            ),
            item,
        ),
    }
}

/// Where an item starts (`struct`, `pub`, ...): the spot to point at when it is not a fn.
fn first_token_span(item: &TokenStream) -> proc_macro2::Span {
    proc_macro2::TokenStream::from(item.clone())
        .into_iter()
        .next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span())
}

/// The error plus the item unchanged, so the user sees one error and no "not found" cascade.
fn with_item(err: syn::Error, item: TokenStream) -> TokenStream {
    let mut out: TokenStream = err.to_compile_error().into();
    out.extend(item);
    out
}
