//! Recipes: what the pipeline builds. The regular image (optionally a
//! variant such as `nonroot`) and the static toolbox are two recipes of
//! the same pipeline: each names its sources, its image configuration and
//! tags, how its files are split into layers and what its SBOM is called.

use crate::error::{bad_input, Result};
use crate::image::write::{debian_distro, distro_id, image_labels};
use crate::source::{debsrc, Source};
use crate::spec::{Spec, VariantSpec};

/// `PATH` of the static image.
const STATIC_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a recipe's files become layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layers {
    /// Packages split into at most this many layers (see `layering`);
    /// one layer when no source manages packages.
    Split(usize),
    /// Everything in one layer of this name.
    One(&'static str),
}

/// What to build.
pub struct Recipe {
    /// The spec, its `[image]` completed (labels) or replaced (static).
    pub spec: Spec,
    /// Tags for `index.json`.
    pub tags: Vec<String>,
    /// The sources, in the order their files are laid.
    pub sources: Vec<Box<dyn Source>>,
    /// How files become layers.
    pub layers: Layers,
    /// Whether the spec's `[[dir]]` entries apply.
    pub dirs: bool,
    /// A variant of the image (`--variant nonroot`).
    pub variant: Option<(String, VariantSpec)>,
    /// The config's user, when the recipe sets one.
    pub user: Option<String>,
    /// The SBOM's name, version and distribution.
    pub sbom_name: String,
    /// See `sbom_name`.
    pub sbom_version: String,
    /// See `sbom_name`.
    pub distro: String,
}

/// What a build asks of a recipe (from the command line).
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// `--variant`.
    pub variant: Option<&'a str>,
    /// `--tag` (the spec's tag when empty).
    pub tags: &'a [String],
    /// `--label KEY=VALUE`.
    pub labels: &'a [(String, String)],
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: u64,
    /// `--layers`.
    pub max_layers: usize,
}

fn tags(spec: &Spec, opts: &Options, suffix: &str) -> Vec<String> {
    let base = if opts.tags.is_empty() {
        vec![spec.image.tag.clone()]
    } else {
        opts.tags.to_vec()
    };
    base.into_iter().map(|t| format!("{t}{suffix}")).collect()
}

impl Recipe {
    /// The recipe `opts` asks for: the static toolbox for `--variant
    /// static` (when the spec has a `[static]` table), else the image.
    pub fn for_build(spec: Spec, opts: &Options) -> Result<Recipe> {
        if opts.variant == Some("static") && spec.statics.is_some() {
            Recipe::static_toolbox(spec, opts)
        } else {
            Recipe::image(spec, opts)
        }
    }

    /// The regular image, optionally a `[variant.NAME]` of it.
    pub fn image(mut spec: Spec, opts: &Options) -> Result<Recipe> {
        let variant = match opts.variant {
            None => None,
            Some(v) => Some((
                v.to_string(),
                spec.variant.get(v).cloned().ok_or_else(|| {
                    bad_input(format!(
                        "--variant {v}: {} has no [variant.{v}] (variants: {})",
                        spec.path.display(),
                        if spec.variant.is_empty() {
                            "none".to_string()
                        } else {
                            spec.variant.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ))
                })?,
            )),
        };
        let suffix = variant
            .as_ref()
            .map(|(_, v)| v.tag_suffix.clone())
            .unwrap_or_default();
        // The spec's tag is the toolset's version; --tag only names the
        // image (a second tag for the same build gives the same bytes).
        let version = spec.image.tag.clone();
        spec.image.labels = image_labels(&spec, &version, opts.labels, opts.source_date_epoch)?;
        let sbom_version = spec
            .image
            .labels
            .get("org.opencontainers.image.version")
            .cloned()
            .unwrap_or_else(|| spec.image.tag.clone());
        Ok(Recipe {
            tags: tags(&spec, opts, &suffix),
            sources: crate::source::for_image(),
            layers: Layers::Split(opts.max_layers),
            dirs: true,
            user: variant
                .as_ref()
                .map(|(_, v)| format!("{}:{}", v.user.0, v.user.1)),
            variant,
            sbom_name: spec.image.name.clone(),
            sbom_version,
            distro: distro_id(&spec),
            spec,
        })
    }

    /// The static toolbox: the `[[source]]` programs alone, `FROM
    /// scratch` style, tagged `TAG-static`.
    pub fn static_toolbox(mut spec: Spec, opts: &Options) -> Result<Recipe> {
        let st = spec
            .statics
            .clone()
            .ok_or_else(|| bad_input(format!("{}: has no [static] table", spec.path.display())))?;
        if spec.source.is_empty() {
            return Err(bad_input(format!(
                "{}: --variant static needs [[source]] entries",
                spec.path.display()
            )));
        }
        let version = spec.image.tag.clone();
        spec.image.labels = image_labels(&spec, &version, opts.labels, opts.source_date_epoch)?;
        spec.image.labels.insert(
            "org.opencontainers.image.title".into(),
            format!("{}-static", spec.image.name),
        );
        spec.image.cmd = Some(st.cmd.clone());
        spec.image.entrypoint = None;
        spec.image.env = vec![STATIC_PATH.to_string()];
        spec.image.workdir = Some("/".into());
        spec.image.user = Some("0:0".into());
        Ok(Recipe {
            tags: tags(&spec, opts, &st.tag_suffix),
            sources: vec![Box::new(debsrc::DebianSources(debsrc::Layout::Image))],
            layers: Layers::One("static"),
            dirs: false,
            variant: None,
            user: Some("0:0".into()),
            sbom_name: format!("{}-static", spec.image.name),
            sbom_version: format!("{version}{}", st.tag_suffix),
            distro: debian_distro(&st.suite),
            spec,
        })
    }
}
