//! `bcl models`: the encoders bcl builds, as timm's `list_models` lists its own.
use anyhow::Result;
use bcl::augment::RecipeStyle;
use bcl::model::Arch;

pub fn exec() -> Result<()> {
    println!("{:<26} {:>5} {:>12}  {:<28} weights' mean / std", "--arch", "d", "parameters", "input");
    for &arch in Arch::all() {
        let spec = arch.spec();
        let input = match spec.style {
            RecipeStyle::Cifar => "small images, own size",
            RecipeStyle::Imagenet | RecipeStyle::Auto => "224 px crops (--image-size)",
        };
        let mean_std = spec.weights_mean_std.map_or("the data's".to_string(), |(m, s)| format!("{m:?} / {s:?}"));
        println!("{:<26} {:>5} {:>12}  {input:<28} {mean_std}", arch.name(), spec.feature_dim, arch.parameter_count());
    }
    println!("parameters: the encoder's, for 3-channel images, without a classifier (torchvision's count less fc)");
    Ok(())
}
