"""Driving the portrait with a face: LivePortrait's own video-driven semantics (issue 25).

One concern per module:
  config.py     what the official driving options mean here (DriveConfig, the animation regions)
  motion.py     a driving face crop -> its motion (the motion extractor per frame, eye/lip ratios)
  keypoints.py  driving motion -> the portrait's driving keypoints, as the official `execute` computes them
  template.py   motion templates in the official `.pkl` layout, loaded with a restricted unpickler
  video.py      a driving video on the 25 fps timeline, its face per frame, one crop window (the official rule)
  render.py     the driving keypoints through the renderer to finished frames
  take.py       a driving video -> per-frame motion (two passes), missing faces held and eased
  offline.py    `render --drive VIDEO|TEMPLATE.pkl`
  rows.py       relative face driving as Headcast motion rows (for the engine, live, and face + voice mixing)
  mix.py        face + voice: who drives head / eyes / mouth / the rest, eased when the face leaves
  camera.py     a camera as a driving source (OpenCV, capture times, lost-camera errors)
  capture.py    what `live --drive` reads: a camera, or a video paced like one
  feed.py       the driving thread: newest face crop with its capture time, never a queue
  face_voice.py face + voice live: a motion source mixing the newest face over any speech source
  live.py       one live run's face driving (session-owned), and its camera-to-frame latency sink
"""
