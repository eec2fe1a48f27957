//! The vocabulary files: RAM's tag list, OVAD's attributes (prompted into templates as the
//! official `build_att_embeds` does), the class names, and the CLIP BPE merges that tokenize them
//! for the text tower.

use std::path::{Path, PathBuf};

use super::read::read_text;
use super::{ConvertError, Inputs, file_err};
use crate::bundle::VocabularyNames;
use crate::text::clip_bpe::ClipBpe;

/// The vocabularies of `convert`, read and checked.
pub struct Vocabularies {
    pub names: VocabularyNames,
    /// Every attribute's prompt templates, attribute after attribute.
    pub templates: Vec<String>,
    pub bpe: ClipBpe,
    /// The BPE file as given, for the bundle, and where it came from.
    pub bpe_bytes: Vec<u8>,
    pub bpe_path: PathBuf,
}

impl Vocabularies {
    /// Reads `--tags`, `--attributes`, `--classes` and `--bpe`.
    pub fn read(inputs: &Inputs) -> Result<Vocabularies, ConvertError> {
        let tags: Vec<String> = read_text(&inputs.tags)?.lines().map(|l| l.trim().to_string()).collect();
        let ovad: serde_json::Value =
            serde_json::from_str(&read_text(&inputs.attributes)?).map_err(|e| file_err(&inputs.attributes, e))?;
        let AttributePrompts { templates, templates_per_attribute, names: attributes } =
            attribute_prompts(&ovad).map_err(|e| file_err(&inputs.attributes, e))?;
        let classes: Vec<String> =
            serde_json::from_str(&read_text(&inputs.classes)?).map_err(|e| file_err(&inputs.classes, e))?;
        let (bpe, bpe_bytes) = read_bpe(&inputs.bpe)?;
        let names = VocabularyNames { tags, attributes, templates_per_attribute, classes };
        Ok(Vocabularies { names, templates, bpe, bpe_bytes, bpe_path: inputs.bpe.clone() })
    }
}

/// A CLIP BPE merges file (`bpe_simple_vocab_16e6.txt.gz`) and its bytes.
pub fn read_bpe(path: &Path) -> Result<(ClipBpe, Vec<u8>), ConvertError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    let bpe = ClipBpe::from_gzip(&bytes).map_err(|e| file_err(path, e))?;
    Ok((bpe, bytes))
}

/// The OVAD attributes as the official `build_att_embeds` prompts them.
pub struct AttributePrompts {
    /// Every attribute's templates, attribute after attribute.
    pub templates: Vec<String>,
    pub templates_per_attribute: Vec<usize>,
    pub names: Vec<String>,
}

pub fn attribute_prompts(ovad: &serde_json::Value) -> Result<AttributePrompts, String> {
    let list = ovad.get("attributes").and_then(|a| a.as_array()).ok_or("no \"attributes\" list")?;
    let (mut templates, mut counts, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for att in list {
        let name = att.get("name").and_then(|n| n.as_str()).ok_or("an attribute without a name")?;
        let kind = att.get("is_has_att").and_then(|n| n.as_str()).ok_or("an attribute without is_has_att")?;
        let (att_type, syns) = name.split_once(':').ok_or_else(|| format!("attribute {name:?} is not type:list"))?;
        let dobj = att_type.replace(" tone", "");
        let syns = match syns {
            "young/baby" => format!("{syns}/kid/kids/child/toddler/boy/girl"),
            "adult/old/aged" => format!("{syns}/teen/elder"),
            _ => syns.to_string(),
        };
        let before = templates.len();
        for syn in syns.split('/') {
            let pair = if kind == "has" {
                [format!("the {syn} {dobj} "), format!("the  has {syn} {dobj}")]
            } else {
                [format!("the {syn} "), format!("the  is {syn}")]
            };
            templates.extend(pair.into_iter().map(|t| t.trim().to_string()));
        }
        counts.push(templates.len() - before);
        names.push(name.to_string());
    }
    Ok(AttributePrompts { templates, templates_per_attribute: counts, names })
}
