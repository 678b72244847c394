"""About the app, for its visitors: what it shows, how to read each page, the models, where to read more."""

import streamlit as st

from gcnn.app import ui
from gcnn.shipped import SHIPPED

# What each shipped model is, in a visitor's words (a model without an entry is listed by its label only).
DESCRIPTIONS = {
    "cnn": "A plain convolutional network, the reference tutorial's baseline. It learned from upright digits only.",
    "cnn_rotaug": "The same plain network, trained on digits turned by random angles: what most people try "
                  "first. It has to learn every orientation from examples.",
    "cnn_rotaug_tta": "The rotation-trained plain network, asked 8 times with the input turned by multiples of 45° "
                      "and its answers averaged (test-time augmentation).",
    "gcnn_c4": "The reference tutorial's group-equivariant network on C4, the four quarter turns. Upright digits "
               "only: it recognises a digit turned by 90°, 180° or 270° exactly as well as an upright one.",
    "gcnn_best": "This project's group-equivariant network on C16, sixteen turns of 22.5°, so no angle is far from "
                 "one it handles by construction. Its kernels are smooth rings and waves that turn as formulas "
                 "(the harmonic basis), so it keeps its answers between quarter turns better. On a square grid "
                 "of pixels only quarter turns are exact, so it also looks at your digit turned by 22.5°, 45° and "
                 "67.5° and keeps, for each digit, its strongest answer: every angle then gets the same four views. "
                 "Upright digits only.",
}

ui.page_setup("About this app", "📖")
models, _ = ui.shipped_models()
ui.sidebar(models)

st.markdown("""
This app lets you **see rotation equivariance**, the idea behind group-equivariant convolutional networks
(GCNNs). Turn a handwritten digit: a plain convolutional network, which has only ever seen upright digits, changes
its mind; a GCNN keeps its answer, because turning the input only turns and reshuffles what happens inside it.

### How to read each page
""")
ui.page_link_card("draw", "Draw a digit with the mouse or a finger, upload a photo, or pick one from the MNIST "
                  "test set. Drag the slider or press ▶ Play to turn it: beside the turned digit, each model's answer "
                  "at that angle, marked in red where the model changed its mind since upright (and right or wrong "
                  "for a test digit). Under them one strip per model covers the whole turn, red wherever its answer "
                  "differs from the upright one: a plain CNN's strip fills with red, a GCNN's stays pale. The page "
                  "remembers your digit and angle while you look at the other pages.")
ui.page_link_card("maps", "Inside a network. Its *feature maps* for one channel are drawn as a ring, one map per "
                  "rotation the network checks, placed at that rotation's angle. Four pictures side by side: the maps "
                  "of your digit turned, the upright digit's maps turned and moved round the ring (what equivariance "
                  "predicts), what is left when you subtract one from the other (white: nothing), and the upright "
                  "digit's maps they come from. Turns between the network's own rotations leave a visible "
                  "difference: it is equivariant to its own group only (exactly at quarter turns and mirrors, which "
                  "move whole pixels). It follows your digit and angle from the Draw page.")
ui.page_link_card("accuracy", "How often each model is right, for test digits turned by every angle. The "
                  "triangles along the top mark each GCNN's own rotations, where its accuracy peaks. The confusion "
                  "matrix shows which digits a model mixes up at one angle (6 and 9 at 180°, for instance).")
ui.page_link_card("groups", "The groups themselves: a picture turned (and mirrored) by every element, and a "
                  "trained GCNN's kernels, one turned copy per element; blue is negative, red positive.")

st.markdown("### The models")
lines = []
for name, label in SHIPPED.items():
    size = (f"{models[name].metadata['parameters']:,} parameters" if name in models and
            models[name].metadata.get("parameters") else "not loaded here")
    lines.append(f"- **{label}** ({size}). {DESCRIPTIONS.get(name, '')}".rstrip())
st.markdown("\n".join(lines))

st.markdown("""
### Words used here
- **Group**: a set of transformations that can be combined and undone. **C4** holds the four quarter turns,
  **C16** sixteen turns of 22.5°, **D4** the four quarter turns and their mirror images.
- **Equivariant**: transforming the input transforms the output in a known way. Here, turning the digit turns each
  feature map and moves it around the ring.
- **Invariant**: transforming the input leaves the output unchanged. Pooling the maps over all positions and all
  group elements gives a vector, and an answer, that do not change under the group's turns.
- **Exact or approximate**: quarter turns and mirrors move whole pixels, so there the maps match to the last
  digits of the computer's arithmetic. Other angles need interpolation between pixels, so there the match is close
  but not perfect.

### Read more
- T. Cohen and M. Welling, [Group Equivariant Convolutional Networks](https://arxiv.org/abs/1602.07576) (ICML 2016),
  where GCNNs come from.
- The University of Amsterdam deep learning course's tutorial on
  [regular group convolutions](https://uvadlc-notebooks.readthedocs.io/en/latest/tutorial_notebooks/DL2/Geometric_deep_learning/tutorial1_regular_group_convolutions.html),
  whose models this app reproduces and extends.
- [escnn](https://github.com/QUVA-Lab/escnn), a full library of equivariant networks for PyTorch.
- The [MNIST](https://yann.lecun.com/exdb/mnist/) handwritten digits the models learned from.

The app and its library, `gcnn`, come with a README for developers: installing, training, the library's API and
the measured results.
""")
