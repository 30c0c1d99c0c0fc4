"""A1111 1.10's settings that this web UI accepts and keeps but that change nothing here, with A1111's defaults.

GET /sdapi/v1/options answers every key a stock A1111 1.10 answers (its modules/shared_options.py and the
settings its built-in extensions add: Lora, canvas zoom, Hypertile, SwinIR, ScuNET, LDSR, "Settings in UI"),
so clients that read or write any of them work unchanged. The settings that do something here are declared in
modules/options.py; these are stored in config.json, returned, checked by their default's type, and not shown on
the Settings page. docs/A1111-OPTIONS.md lists them as "accepted, no effect". An extension that declares one of
these keys takes it over (Options.declare)."""
from __future__ import annotations

from typing import Any

# A1111's Settings section → {key: A1111's default}
NO_EFFECT_SECTIONS: dict[str, dict[str, Any]] = {
    "Saving images/grids": {
        "save_images_replace_action": "Replace", "grid_zip_filename_pattern": "", "font": "",
        "grid_text_active_color": "#000000", "grid_text_inactive_color": "#999999", "grid_background_color": "#ffffff",
        "save_images_before_face_restoration": False, "save_images_before_highres_fix": False,
        "save_images_before_color_correction": False, "save_mask": False, "save_mask_composite": False,
        "export_for_4chan": True, "img_downscale_threshold": 4.0, "target_side_length": 4000,
        "use_original_name_batch": True, "use_upscaler_name_as_suffix": False, "save_init_img": False, "temp_dir": "",
        "clean_temp_dir_at_start": False, "save_incomplete_images": False, "notification_audio": True,
        "notification_volume": 100,
    },
    "Paths for saving": {
        "outdir_samples": "", "outdir_grids": "", "outdir_init_images": "outputs/init-images",
    },
    "Saving to a directory": {
        "grid_save_to_dirs": True, "directories_filename_pattern": "[date]", "directories_max_prompt_words": 8,
    },
    "Upscaling": {
        "realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
        "dat_enabled_models": ["DAT x2", "DAT x3", "DAT x4"], "DAT_tile": 192, "DAT_tile_overlap": 8,
        "upscaler_for_img2img": None, "set_scale_by_when_changing_upscaler": False,
    },
    "Face restoration": {
        "face_restoration": False, "face_restoration_unload": False,
    },
    "System": {
        "auto_launch_browser": "Local", "enable_console_prompts": False, "show_warnings": False,
        "show_gradio_deprecation_warnings": True, "memmon_poll_rate": 8, "samples_log_stdout": False,
        "multiple_tqdm": True, "enable_upscale_progressbar": True, "print_hypernet_extra": False,
        "list_hidden_files": True, "disable_mmap_load_safetensors": False, "hide_ldm_prints": True,
        "dump_stacks_on_signal": False,
    },
    "Profiler": {
        "profiling_explanation": "", "profiling_enable": False, "profiling_activities": ["CPU"],
        "profiling_record_shapes": True, "profiling_profile_memory": True, "profiling_with_stack": True,
        "profiling_filename": "trace.json",
    },
    "API": {
        "api_enable_requests": True, "api_forbid_local_requests": True, "api_useragent": "",
    },
    "Training": {
        "unload_models_when_training": False, "pin_memory": False, "save_optimizer_state": False,
        "save_training_settings_to_txt": True, "dataset_filename_word_regex": "", "dataset_filename_join_string": " ",
        "training_image_repeats_per_epoch": 1, "training_write_csv_every": 500,
        "training_xattention_optimizations": False, "training_enable_tensorboard": False,
        "training_tensorboard_save_images": False, "training_tensorboard_flush_every": 120,
    },
    "Stable Diffusion": {
        "sd_checkpoints_keep_in_cpu": True, "sd_checkpoint_cache": 0, "sd_unet": "Automatic",
        "enable_batch_seeds": True, "sdxl_clip_l_skip": False, "upcast_attn": False, "tiling": False,
        "enable_prompt_comments": True,
    },
    "Stable Diffusion XL": {
        "sdxl_crop_top": 0, "sdxl_crop_left": 0, "sdxl_refiner_low_aesthetic_score": 2.5,
        "sdxl_refiner_high_aesthetic_score": 6.0,
    },
    "Stable Diffusion 3": {
        "sd3_enable_t5": False,
    },
    "VAE": {
        "sd_vae_explanation": "", "sd_vae_checkpoint_cache": 0, "sd_vae_overrides_per_model_preferences": True,
        "auto_vae_precision_bfloat16": False, "auto_vae_precision": True, "sd_vae_encode_method": "Full",
        "sd_vae_decode_method": "Full",
    },
    "img2img": {
        "inpainting_mask_weight": 1.0, "img2img_extra_noise": 0.0, "img2img_color_correction": False,
        "img2img_background_color": "#ffffff", "img2img_sketch_default_brush_color": "#ffffff",
        "img2img_inpaint_mask_brush_color": "#ffffff", "img2img_inpaint_sketch_default_brush_color": "#ffffff",
        "img2img_inpaint_mask_high_contrast": True, "img2img_inpaint_mask_scribble_alpha": 75, "return_mask": False,
        "return_mask_composite": False, "img2img_batch_show_results_limit": 32, "overlay_inpaint": True,
        "img2img_autosize": False, "img2img_batch_use_original_name": False,
    },
    "Optimizations": {
        "cross_attention_optimization": "Automatic", "token_merging_ratio": 0.0, "token_merging_ratio_img2img": 0.0,
        "token_merging_ratio_hr": 0.0, "persistent_cond_cache": True, "batch_cond_uncond": True,
        "fp8_storage": "Disable", "cache_fp16_weight": False,
    },
    "Compatibility": {
        "auto_backcompat": True, "use_old_emphasis_implementation": False, "use_old_hires_fix_width_height": False,
        "hires_fix_use_firstpass_conds": False, "use_downcasted_alpha_bar": False,
        "refiner_switch_by_sample_steps": False, "lora_functional": False,
    },
    "Interrogate": {
        "interrogate_deepbooru_score_threshold": 0.5,
        "deepbooru_sort_alpha": True, "deepbooru_use_spaces": True, "deepbooru_escape": True,
        "deepbooru_filter_tags": "",
    },
    "Extra Networks": {
        "extra_networks_show_hidden_directories": True, "extra_networks_dir_button_function": False,
        "extra_networks_hidden_models": "When searched", "extra_networks_default_multiplier": 1.0,
        "extra_networks_card_width": 0, "extra_networks_card_height": 0, "extra_networks_card_text_scale": 1.0,
        "extra_networks_card_show_desc": True, "extra_networks_card_description_is_html": False,
        "extra_networks_card_order_field": "Path", "extra_networks_card_order": "Ascending",
        "extra_networks_tree_view_style": "Dirs", "extra_networks_tree_view_default_enabled": True,
        "extra_networks_tree_view_default_width": 180, "extra_networks_add_text_separator": " ",
        "ui_extra_networks_tab_reorder": "", "textual_inversion_print_at_load": False,
        "textual_inversion_add_hashes_to_infotext": True, "sd_hypernetwork": "None", "sd_lora": "None",
        "lora_preferred_name": "Alias from file", "lora_add_hashes_to_infotext": True,
        "lora_bundled_ti_to_infotext": True, "lora_show_all": False, "lora_hide_unknown_for_versions": [],
        "lora_in_memory_limit": 0, "lora_not_found_warning_console": False, "lora_not_found_gradio_warning": False,
    },
    "Prompt editing": {
        "keyedit_precision_attention": 0.1, "keyedit_precision_extra": 0.05,
        "keyedit_delimiters": ".,\\/!?%^*;:{}=`~() ",
        "keyedit_delimiters_whitespace": ["Tab", "Carriage Return", "Line Feed"], "keyedit_move": True,
        "disable_token_counters": False, "include_styles_into_token_counters": True,
    },
    "Gallery": {
        "do_not_show_images": False, "js_modal_lightbox": True, "js_modal_lightbox_initially_zoomed": True,
        "js_modal_lightbox_gamepad": False, "js_modal_lightbox_gamepad_repeat": 250,
        "sd_webui_modal_lightbox_icon_opacity": 1.0, "sd_webui_modal_lightbox_toolbar_opacity": 0.9,
        "gallery_height": "", "open_dir_button_choice": "Subdirectory", "hires_button_gallery_insert": False,
    },
    "UI alternatives": {
        "compact_prompt_box": False, "samplers_in_dropdown": True, "dimensions_and_batch_together": True,
        "sd_checkpoint_dropdown_use_short": False, "hires_fix_show_sampler": False, "hires_fix_show_prompts": False,
        "txt2img_settings_accordion": False, "img2img_settings_accordion": False, "interrupt_after_current": True,
    },
    "User interface": {
        "localization": "None", "ui_tab_order": [], "hidden_tabs": [], "ui_reorder_list": [], "gradio_theme": "Default",
        "gradio_themes_cache": True, "show_progress_in_title": True, "send_seed": True, "send_size": True,
        "enable_reloading_ui_scripts": False,
    },
    "Infotext": {
        "infotext_explanation": "", "enable_pnginfo": True, "save_txt": False, "add_model_name_to_info": True,
        "add_model_hash_to_info": True, "add_vae_name_to_info": True, "add_vae_hash_to_info": True,
        "add_user_name_to_info": False, "add_version_to_infotext": True, "disable_weights_auto_swap": True,
        "infotext_skip_pasting": [], "infotext_styles": "Apply if any",
    },
    "Live previews": {
        "show_progressbar": True, "live_previews_image_format": "png", "show_progress_grid": True,
        "live_preview_allow_lowvram_full": False, "live_preview_content": "Prompt", "live_preview_refresh_period": 1000,
        "live_preview_fast_interrupt": False, "js_live_preview_in_modal_lightbox": False,
        "prevent_screen_sleep_during_generation": True,
    },
    "Sampler parameters": {
        "hide_samplers": [], "ddim_discretize": "uniform",
    },
    "Postprocessing": {
        "postprocessing_enable_in_main_ui": [], "postprocessing_disable_in_extras": [],
        "postprocessing_operation_order": [], "upscaling_max_images_in_cache": 5,
        "postprocessing_existing_caption_action": "Ignore",
    },
    "Hidden": {
        "disable_all_extensions": "none", "restore_config_state_file": "", "sd_checkpoint_hash": "",
    },
    "Canvas Hotkeys": {
        "canvas_hotkey_zoom": "Alt", "canvas_hotkey_adjust": "Ctrl", "canvas_hotkey_shrink_brush": "Q",
        "canvas_hotkey_grow_brush": "W", "canvas_hotkey_move": "F", "canvas_hotkey_fullscreen": "S",
        "canvas_hotkey_reset": "R", "canvas_hotkey_overlap": "O", "canvas_show_tooltip": True,
        "canvas_auto_expand": True, "canvas_blur_prompt": False, "canvas_disabled_functions": ["Overlap"],
    },
    "Hypertile": {
        "hypertile_explanation": "", "hypertile_enable_unet": False, "hypertile_enable_unet_secondpass": False,
        "hypertile_max_depth_unet": 3, "hypertile_max_tile_unet": 256, "hypertile_swap_size_unet": 3,
        "hypertile_enable_vae": False, "hypertile_max_depth_vae": 3, "hypertile_max_tile_vae": 128,
        "hypertile_swap_size_vae": 3,
    },
    "Upscaler extensions": {
        "SWIN_tile": 192, "SWIN_tile_overlap": 8, "SWIN_torch_compile": False, "SCUNET_tile": 256,
        "SCUNET_tile_overlap": 8, "ldsr_steps": 100, "ldsr_cached": False,
    },
    "Settings in UI": {
        "settings_in_ui": "", "extra_options_txt2img": [], "extra_options_img2img": [], "extra_options_cols": 1,
        "extra_options_accordion": False,
    },
}

NO_EFFECT: dict[str, Any] = {key: default for section in NO_EFFECT_SECTIONS.values()
                             for key, default in section.items()}
