"""Datasets: readers for VGGSound, Landscape and AudioSet-Drum layouts, and a synthetic dataset."""
