"""Runs the trained scene models with Hugging Face transformers, as a user of transformers would load them.

    python models/verify_with_transformers.py models/blip2-scenes-opt models/blip2-scenes-itm SCENES_DIR > out.json

SCENES_DIR comes from `java -jar target/blip2-stream.jar scenes --out SCENES_DIR` (PNGs and scenes.jsonl). For each
scene it prints the greedy caption (from </s>, as the Java side starts), the answers to its questions in OPT's
"Question: {q} Answer:" template, and the ITM probability and ITC score of its caption, as JSON lines; the last line
sums up exact matches against the scenes' truth.
"""
import json
import sys

import torch
from PIL import Image
from transformers import (Blip2ForConditionalGeneration, Blip2ForImageTextRetrieval, BlipImageProcessor,
                          PreTrainedTokenizerFast)

gen_dir, itm_dir, scenes = sys.argv[1:4]
proc = BlipImageProcessor.from_pretrained(gen_dir)
tok = PreTrainedTokenizerFast(tokenizer_file=f"{gen_dir}/tokenizer.json", bos_token="</s>", eos_token="</s>",
                              pad_token="<pad>", unk_token="<unk>")
gen = Blip2ForConditionalGeneration.from_pretrained(gen_dir).eval()
itm = Blip2ForImageTextRetrieval.from_pretrained(itm_dir).eval()
q = gen.config.num_query_tokens
image_token = gen.config.image_token_index


def generate(px, prompt, n):
    ids = tok(prompt)["input_ids"] if prompt else [tok.convert_tokens_to_ids("</s>")]
    full = [image_token] * q + ids
    input_ids = torch.tensor([full])
    with torch.no_grad():
        seq = gen.generate(pixel_values=px, input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                           max_new_tokens=n, do_sample=False, num_beams=1)[0].tolist()
    new = seq[len(full):] if seq[:len(full)] == full else seq
    return new, tok.decode(new, skip_special_tokens=True).strip()


rows = [json.loads(line) for line in open(f"{scenes}/scenes.jsonl")]
captions_right = answers_right = answers = 0
for r in rows:
    px = proc(images=Image.open(f"{scenes}/{r['image']}").convert("RGB"), return_tensors="pt")["pixel_values"]
    ids, caption = generate(px, None, 12)
    out = {"image": r["image"], "truth": r["caption"], "caption": caption, "caption_ids": ids, "answers": []}
    captions_right += caption == r["caption"]
    for qa in r["questions"]:
        _, a = generate(px, f"Question: {qa['question']} Answer:", 4)
        out["answers"].append([qa["question"], qa["answer"], a])
        answers += 1
        answers_right += a == qa["answer"]
    text = tok([r["caption"]], return_tensors="pt", padding=True)
    with torch.no_grad():
        m = itm(pixel_values=px, input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                use_image_text_matching_head=True)
        c = itm(pixel_values=px, input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                use_image_text_matching_head=False)
    out["itm_probability"] = torch.softmax(m.logits_per_image, dim=1)[0, 1].item()
    out["itc_score"] = c.logits_per_image[0, 0].item()
    print(json.dumps(out))
print(json.dumps({"scenes": len(rows), "caption_exact_match": captions_right / len(rows),
                  "vqa_accuracy": answers_right / answers}))
