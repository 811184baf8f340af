"""``advnets explore`` (issue 29): the paper live in the browser -- Figure 1 and the 2-D toys trained by advnets'
own Algorithm 1 (:mod:`advnets.explore.toys`), a trained model's samples, neighbours, paths and discriminator
(:mod:`advnets.explore.models`), served by a small Starlette app (:mod:`advnets.explore.app`) with its page in
``static/``. See docs/explore.md."""
