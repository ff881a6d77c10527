"""Video files frame by frame through OpenCV: read, transform each RGB frame, write an annotated or stylised mp4."""

from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def is_video_file(path):
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def split_videos(paths):
    """(videos, image files, problems) of command-line paths: video files as given (as Paths), the rest expanded by
    `dlapps.data.images.list_image_files` (folders walked; problems are (path, message) pairs)."""
    from dlapps.data.images import list_image_files

    videos = [Path(p) for p in paths if is_video_file(p)]
    files, problems = list_image_files([p for p in paths if not is_video_file(p)])
    return videos, files, problems


def transform_video(path, target, transform, max_size=None, on_frame=None, max_frames=None):
    """Apply `transform` (RGB uint8 (H, W, 3) -> RGB uint8 of the same size) to every frame of a video file.

    Args:
        path: the video file (any format OpenCV's FFmpeg reads).
        target: the file to write (.webm: VP9; else mp4v), or None to write nothing.
        max_size: frames larger than this (longest side, pixels) are shrunk first (OpenCV's area interpolation).
        on_frame: called with (index, frame_count or 0) after each frame (progress).
        max_frames: stop after this many frames (None: the whole video).
    Returns:
        the number of frames processed.
    Raises:
        ValueError: the file is not a readable video or has no frames (the message names it).
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: not a readable video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    writer, count = None, 0
    try:
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            height, width = rgb.shape[:2]
            if max_size and max(height, width) > max_size:
                scale = max_size / max(height, width)
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            result = transform(rgb)
            if target is not None and writer is None:
                # WebM takes VP9 (browsers play it; OpenCV's wheel has no H.264 encoder), anything else mp4v.
                codec = "VP90" if Path(target).suffix.lower() == ".webm" else "mp4v"
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*codec), fps, result.shape[1::-1])
            if writer is not None:
                writer.write(cv2.cvtColor(result, cv2.COLOR_RGB2BGR))
            count += 1
            if on_frame:
                on_frame(count, total)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if count == 0:
        raise ValueError(f"{path}: no frames could be read")
    return count
