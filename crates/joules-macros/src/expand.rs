//! Code generation for `#[measure_energy]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ItemFn;
use syn::spanned::Spanned;

use crate::attr::MeasureArgs;

/// Wraps the function body in a span guard (sync) or an instrumented future (async).
pub(crate) fn expand(args: &MeasureArgs, func: ItemFn) -> syn::Result<TokenStream> {
    let sig = &func.sig;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "#[measure_energy] cannot measure a `const fn`: it may run at compile time, \
             where there is no clock and no energy to measure",
        ));
    }
    let name = match &args.name {
        Some(lit) => lit.value(),
        None => sig.ident.to_string(),
    };
    let ItemFn { attrs, vis, sig, block } = func;
    let (site, enter) = match &args.index {
        None => (
            quote! {
                static __JOULES_SITE: ::joules::__private::Site = ::joules::__private::Site::new(
                    #name,
                    ::core::module_path!(),
                    ::core::file!(),
                    ::core::line!(),
                );
            },
            match &args.sync {
                Some(sync) => quote! { ::joules::__private::enter_synced(&__JOULES_SITE, #sync) },
                None => quote! { ::joules::__private::enter(&__JOULES_SITE) },
            },
        ),
        Some(index) => (
            quote! {
                static __JOULES_SITE: ::joules::__private::IndexedSite =
                    ::joules::__private::IndexedSite::new(
                        #name,
                        ::core::module_path!(),
                        ::core::file!(),
                        ::core::line!(),
                    );
            },
            match &args.sync {
                Some(sync) => quote_spanned! {index.span()=>
                    ::joules::__private::enter_indexed_synced(&__JOULES_SITE, #index, #sync)
                },
                None => quote_spanned! {index.span()=>
                    ::joules::__private::enter_indexed(&__JOULES_SITE, #index)
                },
            },
        ),
    };
    if let Some(sync) = &args.sync
        && sig.asyncness.is_some()
    {
        return Err(syn::Error::new_spanned(
            sync,
            "`sync` cannot be used on an `async fn`: its span is entered at every poll; \
             synchronise the device inside the future instead",
        ));
    }
    // Counted once a call, inside its span; for an `async fn`, in its first poll. Not even
    // computed with no profiler running.
    let ops = args.ops.as_ref().map(|expr| {
        quote_spanned! {expr.span()=>
            if ::joules::__private::profiling() {
                ::joules::add_ops(::joules::__private::OpsCount::ops(#expr));
            }
        }
    });
    // The index is computed at the call, before the body may move its arguments.
    let instrumented = match &args.index {
        None => quote! {
            ::joules::__private::Instrumented::new(&__JOULES_SITE, async move { #ops #block }).await
        },
        Some(index) => quote_spanned! {index.span()=>
            ::joules::__private::Instrumented::new_indexed(
                &__JOULES_SITE,
                #index,
                async move { #ops #block },
            )
            .await
        },
    };
    let body = if sig.asyncness.is_some() {
        // The guard must not live across an `.await` (the future may move threads), so the
        // span is entered around each poll of the body instead.
        quote_spanned! {block.span()=>
            #site
            #instrumented

        }
    } else {
        quote_spanned! {block.span()=>
            #site
            let __joules_guard = #enter;
            #ops
            #block
        }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}
